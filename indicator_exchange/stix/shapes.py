"""The shapes of the STIX objects this service generates, as ``TypedDict``: callers read their fields typed.

They are plain dicts at run time (stored and served as JSON unchanged); the types say which properties every
generated object has (STIX 2.1 §3.2 common properties, then each type's own) and which it may have.
"""

from typing import Any, NotRequired, TypedDict


class Generated(TypedDict):
    """Common properties of every SDO/SRO we create (STIX 2.1 §3.2)."""

    type: str
    spec_version: str
    id: str
    created_by_ref: str
    created: str
    modified: str
    object_marking_refs: list[str]


class Indicator(Generated):
    """STIX 2.1 §4.7 indicator, with our proxy-context extension on proxy indicators."""

    name: str
    description: str
    indicator_types: list[str]
    pattern: str
    pattern_type: str
    pattern_version: str
    valid_from: str
    valid_until: str
    confidence: int
    labels: NotRequired[list[str]]
    extensions: NotRequired[dict[str, dict[str, Any]]]
    revoked: NotRequired[bool]


class Campaign(Generated):
    """STIX 2.1 §4.2 campaign: one per detection cluster."""

    name: str
    description: str
    first_seen: str
    last_seen: str
    objective: str
    confidence: int


class PromptObservable(TypedDict):
    """The ``x-llm-prompt`` SCO (our extension) a partner builds from its traffic to match prompt indicators."""

    type: str
    spec_version: str
    id: str
    normalization: str
    hashes: dict[str, str]
    normalized_length: int
    fingerprint_key_id: str
    lsh_bands: list[str]
    extensions: dict[str, dict[str, str]]
