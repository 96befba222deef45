"""STIX 2.1 validation of incoming objects, for collections whose policy is ``strict`` (``docs/validation.md``).

``validate_object`` runs after ``objects.inspect_object`` (the common properties every policy checks) and
checks what STIX 2.1 says an object MUST be: the required properties of each spec-defined type (SDOs §4,
SROs §5, SCOs §6, marking definitions §7.2, language content §7.1, extension definitions §7.3), identifiers
(§2.9: ``type--uuid``, an RFC 4122 UUID), timestamps (§2.14) and their order where the spec requires one,
closed vocabularies (the ``-enum`` ones; open ``-ov`` vocabularies are SHOULD and are not enforced), the types
that ``*_ref``/``*_refs`` may point to, and STIX patterns (``pattern_type`` ``stix``).

The field's tools were measured for this (``bench/validation.py``): ``stix2-validator`` and ``stix2.parse``
cost far more per object than an ingest can spare, so the checks are table-driven here, and
``stix2-patterns`` is used for patterns only (``pattern_validation``).
Custom objects and properties pass as STIX allows them: an unknown type gets the checks that apply to every
object (identifiers, ``*_ref``/``*_refs`` form, no empty lists).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from indicator_exchange.stix.messages import shown
from indicator_exchange.stix.objects import _UUID, InvalidObject, parse_timestamp_us
from indicator_exchange.stix.pattern_validation import pattern_error
from indicator_exchange.stix.types import SCO_TYPES, SDO_TYPES, SPEC_TYPES, SRO_TYPES

Checker = Callable[[dict[str, Any]], str | None]

# A collection's policy: "strict" runs ``validate_object``; "basic" only ``inspect_object`` (store verbatim).
STRICT, BASIC = "strict", "basic"
POLICIES = (STRICT, BASIC)


# Reference targets: spec type names, or a category. A custom (non-spec) type may be an SDO or an SCO, so it
# is accepted wherever a category is; a spec type must be of the category.
SDO, SCO, SRO = "<SDO>", "<SCO>", "<SRO>"
_CATEGORIES = {SDO: SDO_TYPES, SCO: SCO_TYPES, SRO: SRO_TYPES}
ANY: frozenset[str] = frozenset()

# Closed vocabularies (STIX 2.1 §10: the "-enum" ones MUST be used).
OPINION_ENUM = frozenset({"strongly-disagree", "disagree", "neutral", "agree", "strongly-agree"})
EXTENSION_TYPE_ENUM = frozenset({"new-sdo", "new-sco", "new-sro", "property-extension", "toplevel-property-extension"})
ENCRYPTION_ALGORITHM_ENUM = frozenset({"AES-256-GCM", "ChaCha20-Poly1305", "mime-type-indicated"})
_MAX_COUNT = 999_999_999


@dataclass(frozen=True, slots=True)
class _Rule:
    required: tuple[str, ...] = ()
    refs: Mapping[str, frozenset[str]] = field(default_factory=dict)
    timestamps: tuple[str, ...] = ()
    order: tuple[tuple[str, str, bool], ...] = ()  # (earlier, later, strictly later)
    enums: Mapping[str, frozenset[str]] = field(default_factory=dict)
    integers: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    numbers: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    booleans: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()
    checks: tuple[Checker, ...] = ()


# --- constraints beyond presence ---------------------------------------------------------------------------


def _one_of(*names: str) -> Checker:
    def check(obj: dict[str, Any]) -> str | None:
        if any(obj.get(n) is not None for n in names):
            return None
        return "at least one of " + ", ".join(repr(n) for n in names) + " is required"

    return check


def _exclusive(first: str, second: str, *, one_required: bool) -> Checker:
    def check(obj: dict[str, Any]) -> str | None:
        has_first, has_second = first in obj, second in obj
        if has_first and has_second:
            return f"{first!r} and {second!r} must not both be present"
        if one_required and not (has_first or has_second):
            return f"one of {first!r} or {second!r} is required"
        return None

    return check


def _requires(name: str, *needed: str) -> Checker:
    def check(obj: dict[str, Any]) -> str | None:
        if name in obj and any(n not in obj for n in needed):
            return f"{name!r} requires " + " and ".join(repr(n) for n in needed)
        return None

    return check


_SCO_COMMON = frozenset(
    {"type", "id", "spec_version", "object_marking_refs", "granular_markings", "defanged", "extensions"}
)


def _some_property(obj: dict[str, Any]) -> str | None:
    if any(key not in _SCO_COMMON for key in obj):
        return None
    return f"a {obj['type']} object needs at least one property of its own (or an extension)"


def _location(obj: dict[str, Any]) -> str | None:
    if "region" in obj or "country" in obj or ("latitude" in obj and "longitude" in obj):
        return None
    return "one of 'region', 'country', or 'latitude' with 'longitude' is required"


def _malware(obj: dict[str, Any]) -> str | None:
    if obj.get("is_family") is True and not obj.get("name"):
        return "'name' is required when 'is_family' is true"
    return None


def _email_message(obj: dict[str, Any]) -> str | None:
    if obj.get("is_multipart") is True and "body" in obj:
        return "'body' must not be present when 'is_multipart' is true (use 'body_multipart')"
    if obj.get("is_multipart") is False and "body_multipart" in obj:
        return "'body_multipart' must not be present when 'is_multipart' is false"
    return None


def _marking_definition(obj: dict[str, Any]) -> str | None:
    if ("definition_type" in obj and "definition" in obj) or "extensions" in obj:
        if "definition" in obj and not isinstance(obj["definition"], dict):
            return "'definition' must be an object"
        return None
    return "'definition_type' and 'definition' are required when 'extensions' is absent"


def _pattern(obj: dict[str, Any]) -> str | None:
    pattern = obj.get("pattern")
    if not isinstance(pattern, str):
        return "'pattern' must be a string"
    if obj.get("pattern_type") != "stix":
        return None  # other pattern languages (sigma, yara, snort…) are not ours to parse
    version = obj.get("pattern_version", "2.1")
    error = pattern_error(pattern, "2.0" if version == "2.0" else "2.1")
    return None if error is None else f"'pattern' is not a valid STIX pattern: {error}"


# --- the table ---------------------------------------------------------------------------------------------

_COMMON_SDO = _Rule(
    refs={"created_by_ref": frozenset({"identity"}), "object_marking_refs": frozenset({"marking-definition"})},
    integers={"confidence": (0, 100)},
    booleans=("revoked",),
    strings=("lang",),
)
_COMMON_SCO = _Rule(refs={"object_marking_refs": frozenset({"marking-definition"})}, booleans=("defanged",))
_SEEN = {"timestamps": ("first_seen", "last_seen"), "order": (("first_seen", "last_seen", False),)}


def _sdo(**rule: Any) -> _Rule:
    return _merge(_COMMON_SDO, _Rule(**rule))


def _sco(**rule: Any) -> _Rule:
    return _merge(_COMMON_SCO, _Rule(**rule))


def _merge(common: _Rule, own: _Rule) -> _Rule:
    return _Rule(
        required=own.required,
        refs={**common.refs, **own.refs},
        timestamps=common.timestamps + own.timestamps,
        order=own.order,
        enums={**common.enums, **own.enums},
        integers={**common.integers, **own.integers},
        numbers={**common.numbers, **own.numbers},
        booleans=common.booleans + own.booleans,
        strings=common.strings + own.strings,
        checks=common.checks + own.checks,
    )


_SOFTWARE = frozenset({"software"})
_ADDRESS = frozenset({"ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"})
_EMAIL = frozenset({"email-addr"})

RULES: dict[str, _Rule] = {
    "attack-pattern": _sdo(required=("name",), strings=("name",)),
    "campaign": _sdo(required=("name",), strings=("name",), **_SEEN),
    "course-of-action": _sdo(required=("name",), strings=("name",)),
    "grouping": _sdo(required=("context", "object_refs"), refs={"object_refs": ANY}),
    "identity": _sdo(required=("name",), strings=("name",)),
    "incident": _sdo(required=("name",), strings=("name",)),
    "indicator": _sdo(
        required=("pattern", "pattern_type", "valid_from"),
        timestamps=("valid_from", "valid_until"),
        order=(("valid_from", "valid_until", True),),
        strings=("pattern_type", "pattern_version"),
        checks=(_pattern,),
    ),
    "infrastructure": _sdo(required=("name",), strings=("name",), **_SEEN),
    "intrusion-set": _sdo(required=("name",), strings=("name",), **_SEEN),
    "location": _sdo(
        numbers={"latitude": (-90, 90), "longitude": (-180, 180)},
        checks=(
            _location,
            _requires("latitude", "longitude"),
            _requires("longitude", "latitude"),
            _requires("precision", "latitude", "longitude"),
        ),
    ),
    "malware": _sdo(
        required=("is_family",),
        booleans=("is_family",),
        refs={"operating_system_refs": _SOFTWARE, "sample_refs": frozenset({"file", "artifact"})},
        checks=(_malware,),
        **_SEEN,
    ),
    "malware-analysis": _sdo(
        required=("product",),
        timestamps=("submitted", "analysis_started", "analysis_ended"),
        refs={
            "host_vm_ref": _SOFTWARE,
            "operating_system_ref": _SOFTWARE,
            "installed_software_refs": _SOFTWARE,
            "sample_ref": frozenset({"file", "network-traffic", "artifact"}),
            "analysis_sco_refs": frozenset({SCO}),
        },
        checks=(_one_of("result", "analysis_sco_refs"),),
    ),
    "note": _sdo(required=("content", "object_refs"), strings=("content",), refs={"object_refs": ANY}),
    "observed-data": _sdo(
        required=("first_observed", "last_observed", "number_observed"),
        timestamps=("first_observed", "last_observed"),
        order=(("first_observed", "last_observed", False),),
        integers={"number_observed": (1, _MAX_COUNT)},
        refs={"object_refs": frozenset({SCO, SRO})},
        checks=(_exclusive("objects", "object_refs", one_required=True),),
    ),
    "opinion": _sdo(required=("opinion", "object_refs"), enums={"opinion": OPINION_ENUM}, refs={"object_refs": ANY}),
    "report": _sdo(
        required=("name", "published", "object_refs"),
        strings=("name",),
        timestamps=("published",),
        refs={"object_refs": ANY},
    ),
    "threat-actor": _sdo(required=("name",), strings=("name",), **_SEEN),
    "tool": _sdo(required=("name",), strings=("name",)),
    "vulnerability": _sdo(required=("name",), strings=("name",)),
    "relationship": _sdo(
        required=("relationship_type", "source_ref", "target_ref"),
        strings=("relationship_type",),
        refs={"source_ref": frozenset({SDO, SCO}), "target_ref": frozenset({SDO, SCO})},
        timestamps=("start_time", "stop_time"),
        order=(("start_time", "stop_time", True),),
    ),
    "sighting": _sdo(
        required=("sighting_of_ref",),
        refs={
            "sighting_of_ref": frozenset({SDO}),
            "observed_data_refs": frozenset({"observed-data"}),
            "where_sighted_refs": frozenset({"identity", "location"}),
        },
        integers={"count": (0, _MAX_COUNT)},
        **_SEEN,
    ),
    "marking-definition": _Rule(
        refs={"created_by_ref": frozenset({"identity"}), "object_marking_refs": frozenset({"marking-definition"})},
        checks=(_marking_definition,),
    ),
    "language-content": _sdo(
        required=("object_ref", "contents"), refs={"object_ref": ANY}, timestamps=("object_modified",)
    ),
    "extension-definition": _sdo(
        required=("created_by_ref", "name", "schema", "version", "extension_types"),
        strings=("name", "schema", "version"),
        enums={"extension_types": EXTENSION_TYPE_ENUM},
    ),
    "artifact": _sco(
        enums={"encryption_algorithm": ENCRYPTION_ALGORITHM_ENUM},
        checks=(_exclusive("payload_bin", "url", one_required=False), _requires("url", "hashes")),
    ),
    "autonomous-system": _sco(required=("number",), integers={"number": (0, 2**32 - 1)}),
    "directory": _sco(
        required=("path",),
        timestamps=("ctime", "mtime", "atime"),
        refs={"contains_refs": frozenset({"file", "directory"})},
    ),
    "domain-name": _sco(
        required=("value",),
        strings=("value",),
        refs={"resolves_to_refs": frozenset({"ipv4-addr", "ipv6-addr", "domain-name"})},
    ),
    "email-addr": _sco(required=("value",), strings=("value",), refs={"belongs_to_ref": frozenset({"user-account"})}),
    "email-message": _sco(
        required=("is_multipart",),
        booleans=("is_multipart",),
        timestamps=("date",),
        refs={
            "from_ref": _EMAIL,
            "sender_ref": _EMAIL,
            "to_refs": _EMAIL,
            "cc_refs": _EMAIL,
            "bcc_refs": _EMAIL,
            "raw_email_ref": frozenset({"artifact"}),
        },
        checks=(_email_message,),
    ),
    "file": _sco(
        timestamps=("ctime", "mtime", "atime"),
        refs={
            "parent_directory_ref": frozenset({"directory"}),
            "contains_refs": frozenset({SCO}),
            "content_ref": frozenset({"artifact"}),
        },
        checks=(_one_of("hashes", "name"),),
    ),
    "ipv4-addr": _sco(
        required=("value",),
        strings=("value",),
        refs={"resolves_to_refs": frozenset({"mac-addr"}), "belongs_to_refs": frozenset({"autonomous-system"})},
    ),
    "ipv6-addr": _sco(
        required=("value",),
        strings=("value",),
        refs={"resolves_to_refs": frozenset({"mac-addr"}), "belongs_to_refs": frozenset({"autonomous-system"})},
    ),
    "mac-addr": _sco(required=("value",), strings=("value",)),
    "mutex": _sco(required=("name",), strings=("name",)),
    "network-traffic": _sco(
        required=("protocols",),
        timestamps=("start", "end"),
        integers={"src_port": (0, 65535), "dst_port": (0, 65535)},
        refs={
            "src_ref": _ADDRESS,
            "dst_ref": _ADDRESS,
            "src_payload_ref": frozenset({"artifact"}),
            "dst_payload_ref": frozenset({"artifact"}),
            "encapsulates_refs": frozenset({"network-traffic"}),
            "encapsulated_by_ref": frozenset({"network-traffic"}),
        },
        checks=(_one_of("src_ref", "dst_ref"),),
    ),
    "process": _sco(
        timestamps=("created_time",),
        refs={
            "opened_connection_refs": frozenset({"network-traffic"}),
            "creator_user_ref": frozenset({"user-account"}),
            "image_ref": frozenset({"file"}),
            "parent_ref": frozenset({"process"}),
            "child_refs": frozenset({"process"}),
        },
        checks=(_some_property,),
    ),
    "software": _sco(required=("name",), strings=("name",)),
    "url": _sco(required=("value",), strings=("value",)),
    "user-account": _sco(
        timestamps=(
            "account_created",
            "account_expires",
            "credential_last_changed",
            "account_first_login",
            "account_last_login",
        ),
        checks=(_some_property,),
    ),
    "windows-registry-key": _sco(
        timestamps=("modified_time",), refs={"creator_user_ref": frozenset({"user-account"})}, checks=(_some_property,)
    ),
    "x509-certificate": _sco(timestamps=("validity_not_before", "validity_not_after"), checks=(_some_property,)),
}
_CUSTOM = _Rule()
_REF_SUFFIXES = ("_ref", "_refs")


# --- checks ------------------------------------------------------------------------------------------------


def validate_object(obj: dict[str, Any]) -> str | None:
    """What makes ``obj`` invalid STIX 2.1, as a message naming the property, or ``None`` if it is valid.

    ``obj`` has passed ``inspect_object`` (type, id, spec_version, created/modified are well formed).
    """
    rule = RULES.get(obj["type"], _CUSTOM)
    message = _uuid_variant("id", obj["id"])
    if message:
        return message
    for name in rule.required:
        if obj.get(name) is None:
            return f"{name!r} is required on a {obj['type']} object"
    for name, value in obj.items():
        if value == []:  # STIX 2.1 §2.7: a list MUST NOT be empty (omit the property instead)
            return f"{name!r} is an empty list (omit the property instead)"
        if name.endswith(_REF_SUFFIXES):
            message = _reference(name, value, rule.refs.get(name, ANY))
            if message:
                return message
    return _values(obj, rule) or _common(obj)


def _values(obj: dict[str, Any], rule: _Rule) -> str | None:
    stamps: dict[str, int] = {}
    for name in rule.timestamps:
        value = obj.get(name)
        if value is not None:
            try:
                stamps[name] = parse_timestamp_us(value, name=repr(name))
            except InvalidObject as exc:
                return str(exc)
    for earlier, later, strictly in rule.order:
        if (
            earlier in stamps
            and later in stamps
            and (stamps[later] < stamps[earlier] or (strictly and stamps[later] == stamps[earlier]))
        ):
            return f"{later!r} must be {'later than' if strictly else 'no earlier than'} {earlier!r}"
    for name in rule.strings:
        if name in obj and not isinstance(obj[name], str):
            return f"{name!r} must be a string"
    for name in rule.booleans:
        if name in obj and not isinstance(obj[name], bool):
            return f"{name!r} must be true or false"
    for name, (low, high) in rule.integers.items():
        value = obj.get(name)
        if value is not None and (type(value) is not int or not low <= value <= high):
            return f"{name!r} must be an integer from {low:,} to {high:,}, not {shown(value)}"
    for name, (lowest, highest) in rule.numbers.items():
        value = obj.get(name)
        if value is not None and (type(value) not in (int, float) or not lowest <= value <= highest):
            return f"{name!r} must be a number from {lowest:g} to {highest:g}, not {shown(value)}"
    for name, allowed in rule.enums.items():
        value = obj.get(name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if not isinstance(v, str) or v not in allowed]
        if bad:
            return f"{name!r} value {shown(bad[0])} is not one of {', '.join(sorted(allowed))}"
    for check in rule.checks:
        message = check(obj)
        if message:
            return message
    return None


def _common(obj: dict[str, Any]) -> str | None:
    """The common properties whose structure STIX 2.1 §3.2 and §7.2.3 fix."""
    labels = obj.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        return "'labels' must be a list of strings"
    for name in ("external_references", "kill_chain_phases", "granular_markings"):
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            return f"{name!r} must be a list of objects"
        for index, item in enumerate(value):
            message = _ITEM_CHECKS[name](item)
            if message:
                return f"{name}[{index}]: {message}"
    extensions = obj.get("extensions")
    if extensions is not None:
        # Empty is let through: stix2 accepts it and the specification's text does not forbid it (only the OASIS
        # JSON schemas ask for one property).
        if not isinstance(extensions, dict):
            return "'extensions' must be an object"
        for key, extension in extensions.items():
            if not isinstance(extension, dict):
                return f"extensions[{key!r}] must be an object"
            if key.startswith("extension-definition--") and _identifier_error(key) is not None:
                return f"extensions key {shown(key)} is not an extension-definition identifier"
            kind = extension.get("extension_type")
            if kind is not None and kind not in EXTENSION_TYPE_ENUM:
                return f"extensions[{key!r}].extension_type {shown(kind)} is not one of the extension types"
    hashes = obj.get("hashes")
    if hashes is not None and not _hashes_ok(hashes):
        return "'hashes' must be a non-empty object of hash names to strings"
    return None


def _external_reference(item: dict[str, Any]) -> str | None:
    if not isinstance(item.get("source_name"), str):
        return "'source_name' is required"
    if not any(k in item for k in ("description", "url", "external_id")):
        return "one of 'description', 'url' or 'external_id' is required beside 'source_name'"
    if "hashes" in item and not _hashes_ok(item["hashes"]):
        return "'hashes' must be a non-empty object of hash names to strings"
    return None


def _kill_chain_phase(item: dict[str, Any]) -> str | None:
    if not isinstance(item.get("kill_chain_name"), str) or not isinstance(item.get("phase_name"), str):
        return "'kill_chain_name' and 'phase_name' are required strings"
    return None


def _granular_marking(item: dict[str, Any]) -> str | None:
    selectors = item.get("selectors")
    if not isinstance(selectors, list) or not selectors or not all(isinstance(s, str) for s in selectors):
        return "'selectors' must be a non-empty list of strings"
    if ("marking_ref" in item) == ("lang" in item):
        return "exactly one of 'marking_ref' or 'lang' is required"
    if "marking_ref" in item:
        return _reference("marking_ref", item["marking_ref"], frozenset({"marking-definition"}))
    return None


_ITEM_CHECKS: dict[str, Checker] = {
    "external_references": _external_reference,
    "kill_chain_phases": _kill_chain_phase,
    "granular_markings": _granular_marking,
}


def _hashes_ok(hashes: object) -> bool:
    return isinstance(hashes, dict) and bool(hashes) and all(isinstance(v, str) for v in hashes.values())


def _reference(name: str, value: object, allowed: frozenset[str]) -> str | None:
    """``*_ref``: one identifier; ``*_refs``: a non-empty list of them; each of a type ``allowed`` takes."""
    values = value if name.endswith("_refs") and isinstance(value, list) else None
    if values is None:
        if name.endswith("_refs"):
            return f"{name!r} must be a list of identifiers"
        values = [value]
    for ref in values:
        if not isinstance(ref, str):
            return f"{name!r} must hold identifiers (type--uuid), not {shown(ref)}"
        error = _identifier_error(ref)
        if error is not None:
            return f"{name!r} {shown(ref)}: {error}"
        if allowed and not _of_type(ref.partition("--")[0], allowed):
            wanted = ", ".join(sorted(t.strip("<>") for t in allowed))
            return f"{name!r} {shown(ref)} must reference {wanted}"
    return None


def _of_type(ref_type: str, allowed: frozenset[str]) -> bool:
    if ref_type in allowed:
        return True
    for category, members in _CATEGORIES.items():
        if category in allowed and (ref_type in members or ref_type not in SPEC_TYPES):
            return True
    return False


@lru_cache(maxsize=65536)  # objects of a feed point at the same identities and markings
def _identifier_error(ref: str) -> str | None:
    prefix, sep, uuid_part = ref.partition("--")
    if not sep or not prefix or _UUID.fullmatch(uuid_part) is None:
        return "not an identifier of the form type--uuid"
    return _uuid_variant_text(uuid_part)


def _uuid_variant(name: str, ident: str) -> str | None:
    error = _uuid_variant_text(ident.partition("--")[2])
    return None if error is None else f"{name!r} {shown(ident)}: {error}"


def _uuid_variant_text(uuid_part: str) -> str | None:
    # STIX 2.1 §2.9: the UUID MUST follow RFC 4122, whose variant bits put 8, 9, a or b here.
    return None if uuid_part[19] in "89abAB" else "its UUID is not an RFC 4122 (variant 1) UUID"
