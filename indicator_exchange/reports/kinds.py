"""Which of our three indicator kinds a STIX pattern expresses (docs/design.md, D2 to D4), read from its object types.

Classifying from the stored pattern keeps the report independent of how an indicator was made: a partner's
indicator, a detector's and one typed in by hand are counted alike.
"""

import re

PROXY_IP = "proxy_ip"
PROMPT_SIGNATURE = "prompt_signature"
ACCOUNT_PATTERN = "account_pattern"
OTHER = "other"

KINDS: tuple[str, ...] = (PROXY_IP, PROMPT_SIGNATURE, ACCOUNT_PATTERN, OTHER)
KIND_LABELS: dict[str, str] = {
    PROXY_IP: "Proxy IP",
    PROMPT_SIGNATURE: "Prompt signature",
    ACCOUNT_PATTERN: "Account pattern",
    OTHER: "Other",
}

_TYPE_KIND: dict[str, str] = {
    "ipv4-addr": PROXY_IP,
    "ipv6-addr": PROXY_IP,
    "autonomous-system": PROXY_IP,
    "x-llm-prompt": PROMPT_SIGNATURE,
    "email-addr": ACCOUNT_PATTERN,
    "user-account": ACCOUNT_PATTERN,
    "x-hashed-identifier": ACCOUNT_PATTERN,
}

# Quoted literals may contain anything (a regex, "a:b"); blank them before looking for `type:path`.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")
_OBJECT_PATH = re.compile(r"([a-z][a-z0-9-]*[a-z0-9]):(?=[A-Za-z_])")


def kind_of_pattern(pattern: object) -> str:
    """The kind of the first object type in ``pattern`` that we know; ``other`` when none (or no pattern)."""
    if not isinstance(pattern, str):
        return OTHER
    for object_type in _OBJECT_PATH.findall(_QUOTED.sub("''", pattern)):
        kind = _TYPE_KIND.get(object_type)
        if kind is not None:
            return kind
    return OTHER
