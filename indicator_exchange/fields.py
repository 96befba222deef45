"""Field types shared by the request schemas (admin, ingest, reports, sync): strict, bounded, storable.

Why one module: every value a client sends ends up in a PostgreSQL column, and PostgreSQL refuses what
pydantic's defaults let through — a NUL character in ``text``, an integer past ``integer``'s 2**31-1, a
timestamp pydantic read from ``0.5``. Each of those was a 500. These types refuse them at the edge with the
API's own 400, and say so in the OpenAPI document (a ``pattern``, a ``maximum``), so a client or a fuzzer
can know the rule before it sends.

Strict, not lax: ``is_active: 0`` or ``objects_per_day: false`` is a client bug that pydantic would
silently coerce; here it is refused.
"""

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, Strict, StringConstraints, WithJsonSchema

# PostgreSQL ``text``/``varchar`` cannot hold U+0000 (and JSONB cannot hold ``\u0000``).
NO_NUL = r"^[^\x00]*$"
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

NulFree = Annotated[str, Strict(), StringConstraints(pattern=NO_NUL)]
"""Any string PostgreSQL can store."""


Title = Annotated[str, Strict(), StringConstraints(pattern=NO_NUL, min_length=1, max_length=256)]
"""A title or organisation (``varchar(256)`` columns)."""

Description = Annotated[str, Strict(), StringConstraints(pattern=NO_NUL, max_length=10_000)]
"""Free text (``text`` columns), bounded so one field cannot be a body's worth of bytes."""

Name = Annotated[str, Strict(), StringConstraints(pattern=NO_NUL, min_length=1, max_length=128)]
"""A principal, API root, key id or alias as a client names it (the widest such column is 128)."""

Count32 = Annotated[int, Strict(), Field(ge=0, le=INT32_MAX)]
"""A count stored in a 32-bit ``integer`` column: 0 … 2**31-1, a JSON integer (never a bool or a string)."""

Count64 = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]
"""A count stored in a ``bigint`` column."""

Flag = Annotated[bool, Strict()]
"""``true`` or ``false`` only: not 0/1, not "yes"."""

# RFC 3339 §5.6 date-time, ASCII digits only (``\d`` would admit other scripts' digits), an offset required.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)


def parse_rfc3339(value: object) -> datetime:
    """An RFC 3339 timestamp string (or an aware ``datetime`` from Python callers) as an aware UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a timestamp needs a UTC offset")
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-01-01T00:00:00Z")
    text = value.upper().replace("Z", "+00:00").replace(" ", "T")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most 6 fractional digits; RFC 3339 allows more
        digits = re.match(r"[0-9]+", rest)
        assert digits is not None
        text = f"{head}.{digits.group()[:6].ljust(6, '0')}{rest[digits.end() :]}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("is not a valid date and time") from None


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-01-01T00:00:00Z"}),
]
"""An RFC 3339 date-time with an offset; numbers, naive times and non-ASCII digits are refused."""


Hours = Annotated[float, Strict(), Field(ge=0, le=24 * 366 * 10, allow_inf_nan=False)]
"""A duration in hours, at most ten years (a ``timedelta`` of more would overflow the date)."""
