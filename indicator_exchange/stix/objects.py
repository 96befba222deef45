"""Structural checks of incoming STIX 2.1 objects and the metadata the store indexes.

Deliberately independent of the ``stix2`` library: this runs on every object of every TAXII POST, and the
checks a TAXII server owes (id, type, spec_version, version timestamps — TAXII 2.1 §5.4) are cheap here.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from indicator_exchange.stix.types import SDO_TYPES, SRO_TYPES

# ASCII digits only: ``\d`` would take any Unicode digit (Arabic-Indic, fullwidth…), which ``int()`` then reads,
# and such a timestamp would be stored and republished as received (RFC 3339 is ASCII).
_TIMESTAMP = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?Z$")
# orjson reads JSON nested 1,024 deep but writes only 254 levels: deeper objects cannot be stored.
MAX_DEPTH = 254
# The store's indexed columns (store/models.py ObjectVersion): longer values cannot be stored, whatever STIX allows.
MAX_TYPE_LENGTH, MAX_ID_LENGTH, MAX_TIMESTAMP_LENGTH = 64, 128, 40
_TYPE = re.compile(r"^([a-z][a-z0-9-]+[a-z0-9])$")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# STIX 2.1 SDO and SRO types: these MUST carry created and modified (STIX 2.1 §3.2, §4, §5).
SDO_SRO_TYPES = SDO_TYPES | SRO_TYPES | {"language-content"}


class InvalidObject(ValueError):
    """An object that cannot be stored; the message says which property and why."""


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the store indexes of one object version."""

    stix_id: str
    stix_type: str
    spec_version: str
    version: int  # microseconds since the epoch of `modified` (or `created`); 0 for SCOs
    modified: str | None  # the version's timestamp exactly as the producer wrote it
    created_by_ref: str | None
    revoked: bool


def parse_timestamp_us(value: object, *, name: str = "timestamp") -> int:
    """A STIX/TAXII timestamp (RFC 3339, UTC ``Z``) as integer microseconds; finer digits are truncated."""
    if not isinstance(value, str):
        raise InvalidObject(f"{name} must be a string timestamp like 2026-02-24T12:00:00.000Z")
    return _parse_timestamp_text(value, name)


@lru_cache(maxsize=4096)  # an envelope's objects mostly share a handful of created/modified values
def _parse_timestamp_text(value: str, name: str) -> int:
    match = _TIMESTAMP.match(value)
    if match is None:
        raise InvalidObject(f"{name} {value!r} is not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.s+]Z)")
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as exc:
        raise InvalidObject(f"{name} {value!r} is not a valid date and time: {exc}") from None
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + micros


def format_timestamp_us(micros: int) -> str:
    """Integer microseconds as a TAXII timestamp with microsecond precision."""
    seconds, rest = divmod(micros, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest:06d}Z"


def inspect_object(obj: object) -> ObjectMeta:
    """Check one object's required common properties and return what the store indexes.

    Raises ``InvalidObject`` naming the offending property.
    """
    if not isinstance(obj, dict):
        raise InvalidObject("each entry of 'objects' must be a JSON object")
    stix_type = obj.get("type")
    if not isinstance(stix_type, str) or not _TYPE.match(stix_type) or len(stix_type) > 250:
        raise InvalidObject("'type' is missing or not a valid STIX type name")
    if len(stix_type) > MAX_TYPE_LENGTH:
        raise InvalidObject(f"'type' is longer than the {MAX_TYPE_LENGTH} characters this server stores")
    stix_id = obj.get("id")
    if not isinstance(stix_id, str) or "--" not in stix_id:
        raise InvalidObject("'id' is missing or not of the form <type>--<uuid>")
    prefix, _, uuid_part = stix_id.partition("--")
    if prefix != stix_type:
        raise InvalidObject(f"'id' prefix {prefix!r} does not match 'type' {stix_type!r}")
    if _UUID.fullmatch(uuid_part) is None:  # RFC 4122 text form, as STIX 2.1 §2.9 requires
        raise InvalidObject(f"'id' {stix_id!r} does not end in a UUID")
    spec_version = obj.get("spec_version")
    if spec_version != "2.1":
        raise InvalidObject("'spec_version' must be '2.1' (this server stores STIX 2.1 objects)")

    modified = obj.get("modified")
    created = obj.get("created")
    if created is not None:
        created_us = parse_timestamp_us(created, name="'created'")
        if len(created) > MAX_TIMESTAMP_LENGTH:
            raise InvalidObject(f"'created' is longer than the {MAX_TIMESTAMP_LENGTH} characters this server stores")
    if modified is not None:
        version = parse_timestamp_us(modified, name="'modified'")
        if len(modified) > MAX_TIMESTAMP_LENGTH:
            raise InvalidObject(f"'modified' is longer than the {MAX_TIMESTAMP_LENGTH} characters this server stores")
        if created is not None and version < created_us:
            raise InvalidObject("'modified' is earlier than 'created'")
        version_text: str | None = str(modified)
    elif stix_type in SDO_SRO_TYPES or (created is not None and stix_type != "marking-definition"):
        raise InvalidObject(f"'modified' is required on a {stix_type} object")
    elif created is not None:
        version, version_text = created_us, created  # marking-definitions version by `created`
    else:
        version, version_text = 0, None  # SCOs are immutable: one version
    created_by_ref = obj.get("created_by_ref")
    if created_by_ref is not None and not isinstance(created_by_ref, str):
        raise InvalidObject("'created_by_ref' must be a string identifier")
    if created_by_ref is not None and len(created_by_ref) > MAX_ID_LENGTH:
        raise InvalidObject(f"'created_by_ref' is longer than the {MAX_ID_LENGTH} characters this server stores")
    return ObjectMeta(
        stix_id=stix_id,
        stix_type=stix_type,
        spec_version=spec_version,
        version=version,
        modified=version_text,
        created_by_ref=created_by_ref,
        revoked=obj.get("revoked") is True,
    )


def canonical_json(obj: dict[str, Any]) -> str:
    """The stored form of an object: its JSON with sorted keys (an identical re-post compares equal).

    Raises ``InvalidObject`` for what the store cannot hold: NUL characters anywhere (PostgreSQL's ``jsonb`` and
    ``text`` refuse ``\\u0000``) and nesting deeper than ``MAX_DEPTH`` levels (the deepest orjson writes).
    """
    try:
        text = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        raise InvalidObject(_unwritable(obj)) from None
    # orjson writes NUL as the escape \u0000; the substring also appears in an escaped backslash followed by
    # "u0000" (legal text), so only then is the object walked to be sure.
    if "\\u0000" in text:
        where = _nul_at(obj, "")
        if where is not None:
            raise InvalidObject(f"{where} contains a NUL character (\\u0000), which cannot be stored")
    return text


def _unwritable(obj: dict[str, Any]) -> str:
    for key, value in obj.items():
        try:
            orjson.dumps({key: value})
        except orjson.JSONEncodeError as exc:
            if "ecursion" in str(exc):
                return f"property {key!r} is nested deeper than the {MAX_DEPTH} levels that can be stored"
            return f"property {key!r} cannot be written as JSON: {exc}"
    return "the object cannot be written as JSON"


def _nul_at(value: object, path: str) -> str | None:
    """The first place (``'name'``, ``'a.b[2]'``, a property name itself) holding NUL, or ``None``."""
    if isinstance(value, str):
        return f"property {path or 'value'!r}" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return f"a property name under {path or 'the object'!r}"
            found = _nul_at(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
