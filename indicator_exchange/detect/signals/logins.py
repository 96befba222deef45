"""Login shapes: the run-length shape of an ``account_login`` (letters, digits, the rest kept), as a regex.

Account farms name their accounts from a generator ("user" + eight digits, a word and a year), so the members of
a cluster share a shape that honest users, who pick their own names, rarely do. The shape is published as
``login_regex`` only where the cluster holds most of the accounts with that shape and the shape says something:
at least one letter run and one digit run and eight characters (``^[A-Za-z]{5}$`` would match half the world).
The raw login never leaves memory; only the shape is kept per account.
"""

import re
from functools import lru_cache

_MIN_LENGTH = 8


@lru_cache(maxsize=1 << 16)
def shape(login: str) -> str | None:
    """``^[A-Za-z]{4}[0-9]{8}$`` for 'user12345678'; None for a login too plain to publish."""
    runs: list[tuple[str, int]] = []
    for char in login:
        kind = "a" if char.isascii() and char.isalpha() else "9" if char.isascii() and char.isdigit() else char
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + 1)
        else:
            runs.append((kind, 1))
    kinds = {kind for kind, _ in runs}
    if len(login) < _MIN_LENGTH or "a" not in kinds or "9" not in kinds or len(runs) > 16:
        return None
    parts = []
    for kind, count in runs:
        atom = "[A-Za-z]" if kind == "a" else "[0-9]" if kind == "9" else re.escape(kind)
        parts.append(atom if count == 1 else f"{atom}{{{count}}}")
    return "^" + "".join(parts) + "$"
