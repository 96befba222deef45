"""Detections to STIX 2.1, exactly as docs/design.md (D1 to D8) and docs/reference/stix-model.md decide.

Inputs are small typed records (``ProxyInput``, ``PromptInput``, ``AccountInput`` with a ``Common`` part) so
this package depends on nothing else of the app. Output is plain JSON-ready dicts. Patterns are generated
from normalised observables in canonical form (sorted lists, compressed addresses, the term order of the
stix2 pattern normaliser), so ids can be derived from them without running the normaliser per detection;
``canonical_pattern`` is the normaliser itself, and the tests hold generated patterns to it.
"""

import hashlib
import hmac
import ipaddress
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Literal

import orjson

from indicator_exchange.stix.fingerprint import NORMALIZATION, PromptFingerprint
from indicator_exchange.stix.markings import Tlp, tlp_of

# Our own UUIDv5 namespace for SDOs/SROs (docs/design.md#d7-deterministic-ids); never the SCO namespace.
SERVICE_NAMESPACE = uuid.UUID("6f1c3b0e-2a44-5e7d-9c1b-8d2f4e6a0b13")

EXT_PROXY_CONTEXT = "extension-definition--d5a8c3e1-9f2b-4a7d-8e6c-1b0f4c7a2d95"
EXT_LLM_PROMPT = "extension-definition--8c4d3b52-6a0e-4f1b-9b7c-5e2d1a0f3c64"
EXT_HASHED_IDENTIFIER = "extension-definition--2e7f9a10-4b3c-4d8e-a1f5-9c6b0d2e7a38"

# MITRE ATLAS techniques, by MITRE's own STIX ids (docs/reference/stix-model.md §4.2). Referenced, never stubbed.
ATLAS_EXTRACT_MODEL = "attack-pattern--3f567912-629a-5e0b-ab0c-0102977c2d6c"  # AML.T0024.002
ATLAS_SERVICE_PROXIES = "attack-pattern--647ac4ac-b2bc-53f7-ab83-81f421a1f0b5"  # AML.T0008.005
ATLAS_PROMPT_CRAFTING = "attack-pattern--6e148299-0460-5d0b-9741-467437464d3d"  # AML.T0065
ATLAS_ESTABLISH_ACCOUNTS = "attack-pattern--d3d7763a-58e1-5e38-84fd-3abea967cb08"  # AML.T0021

ProxyKind = Literal["residential", "mobile", "datacenter", "isp", "vpn", "tor", "unknown"]
IdentifierType = Literal["email", "email-domain", "phone", "payment-instrument", "device"]

# Lifetimes by kind (docs/design.md#d8-lifetimes).
LIFETIME = {
    "residential": timedelta(hours=72),
    "mobile": timedelta(hours=24),
    "network": timedelta(days=30),
    "asn": timedelta(days=90),
    "prompt-sha": timedelta(days=180),
    "prompt-lsh": timedelta(days=90),
    "email-domain": timedelta(days=90),
    "login": timedelta(days=30),
    "cadence": timedelta(days=90),
    "identifier": timedelta(days=365),
}

CAPABILITY_LABELS = {
    "cot-elicitation": ("chain-of-thought-elicitation", "CoT elicitation"),
    "rubric-grading": ("rubric-grading", "rubric grading"),
    "agentic-coding": ("agentic-coding", "agentic coding"),
    "tool-use": ("tool-use", "tool use"),
    "censorship-probing": ("censorship-probing", "censorship probing"),
    "computer-vision": ("computer-vision", "computer vision"),
    "other": ("capability-extraction", "capability extraction"),
}


@dataclass(frozen=True, slots=True)
class Publisher:
    """Who we are when we publish: the identity every object we create names as ``created_by_ref``."""

    identity_id: str
    organisation: str
    community_key: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class Common:
    detector: str
    first_seen: datetime
    last_seen: datetime
    confidence: int
    tlp: Tlp
    cluster: str | None = None
    valid_until: datetime | None = None
    description: str | None = None
    accounts_linked: int | None = None
    requests: int | None = None


@dataclass(frozen=True, slots=True)
class ProxyInput:
    common: Common
    proxy_kind: ProxyKind
    value: str | None = None  # an address or CIDR range
    asn: int | None = None


@dataclass(frozen=True, slots=True)
class PromptInput:
    common: Common
    capability: str
    sha256: str
    fingerprint: PromptFingerprint | None = None  # None when only a SHA-256 was sent (exact match only)


@dataclass(frozen=True, slots=True)
class Identifier:
    type: IdentifierType
    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Cadence:
    count: int
    within_seconds: int
    email_domain: str


@dataclass(frozen=True, slots=True)
class AccountInput:
    common: Common
    email_domains: tuple[str, ...] = ()
    login_regex: str | None = None
    cadence: Cadence | None = None
    identifiers: tuple[Identifier, ...] = ()


DetectionInput = ProxyInput | PromptInput | AccountInput


@dataclass(slots=True)
class Conversion:
    """The STIX of one detection: versioned objects (indicators, the campaign) and immutable context, and
    ``adjusted``: where the published objects differ from what the detection asked for, and why."""

    indicators: list[dict[str, Any]] = field(default_factory=list)
    campaign: dict[str, Any] | None = None
    context: list[dict[str, Any]] = field(default_factory=list)
    adjusted: list[str] = field(default_factory=list)

    @property
    def versioned(self) -> list[dict[str, Any]]:
        return [*self.indicators, *([self.campaign] if self.campaign else [])]


@lru_cache(maxsize=1024)  # one request stamps thousands of objects with the same few moments
def stix_timestamp(moment: datetime) -> str:
    """Millisecond precision, as the stix2 library writes ``created``/``modified``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@lru_cache(maxsize=1024)
def _seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deterministic_id(stix_type: str, *parts: str | int) -> str:
    """UUIDv5 in our namespace over a JSON array of the type and the identifying parts
    (docs/design.md#d7-deterministic-ids).

    Computed as RFC 4122 §4.3 does (SHA-1 of namespace + name, version and variant bits set) without
    building ``uuid.UUID`` objects: ids are minted several times per detection. A test holds it to
    ``uuid.uuid5``. The name is the compact, non-ASCII-preserving JSON of the ``json`` module; orjson writes
    the same bytes for strings and integers (a test checks every character) at a tenth of the cost.
    """
    name = orjson.dumps([stix_type, *parts])
    digest = bytearray(hashlib.sha1(SERVICE_NAMESPACE.bytes + name).digest()[:16])  # noqa: S324 - UUIDv5
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{stix_type}--{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def stix_string(text: str) -> str:
    """A STIX pattern string literal: quotes and backslashes escaped (STIX 2.1 §9.3)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@lru_cache(maxsize=4096)
def canonical_pattern(pattern: str) -> str:
    """The stix2 pattern-equivalence normal form of ``pattern`` (raises on an invalid pattern)."""
    from stix2 import pattern_visitor
    from stix2.equivalence.pattern import _get_pattern_normalizer

    ast = pattern_visitor.create_pattern_object(pattern, version="2.1")
    normalised, _ = _get_pattern_normalizer().transform(ast)
    return str(normalised)


def hmac_identifier(key: bytes, identifier_type: str, value: str) -> str:
    """HMAC-SHA256(community key, type + ":" + normalised value) as hex (docs/design.md#d4-account-patterns)."""
    return hmac.new(
        key, f"{identifier_type}:{normalise_identifier(identifier_type, value)}".encode(), hashlib.sha256
    ).hexdigest()


def normalise_identifier(identifier_type: str, value: str) -> str:
    """Trim and casefold (emails, domains, devices, payment fingerprints); phones keep digits and a leading +."""
    value = value.strip()
    if identifier_type == "phone":
        digits = re.sub(r"[^0-9]", "", value)
        return ("+" if value.startswith("+") else "") + digits
    return value.casefold()


@lru_cache(maxsize=1)
def extension_definitions() -> dict[str, dict[str, Any]]:
    data = json.loads(
        resources.files("indicator_exchange.stix").joinpath("data/extension_definitions.json").read_text()
    )
    return {obj["id"]: obj for obj in data.values()}


# The publisher identity and the extension definitions are marked TLP:CLEAR: every object we publish names
# them (created_by_ref, extensions), so every reader must be able to resolve them, whatever its clearance and
# the collection's default TLP. Their ``modified`` moved when they gained the marking: ingestion writes a
# context object again when the stored one is an older version, which re-marks an existing store on the next
# publish into each collection.
CONTEXT_MODIFIED = "2026-12-01T00:00:00.000Z"


def identity_object(publisher: Publisher) -> dict[str, Any]:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": publisher.identity_id,
        "created": "2026-01-01T00:00:00.000Z",
        "modified": CONTEXT_MODIFIED,
        "name": publisher.organisation,
        "identity_class": "organization",
        "sectors": ["technology"],
        "object_marking_refs": [Tlp.CLEAR.marking_id],
    }


@cache  # shared like the extension definitions: context objects are never modified
def _marking_object(level: Tlp) -> dict[str, Any]:
    from indicator_exchange.stix.markings import tlp2_marking_definitions

    return tlp2_marking_definitions([level])[0]


def _base_indicator(
    common: Common,
    publisher: Publisher,
    now: datetime,
    *,
    pattern: str,
    name: str,
    lifetime: timedelta,
    indicator_types: list[str],
    tlp: Tlp,
    generation: int,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    created = stix_timestamp(now)
    valid_until = common.valid_until or (common.last_seen + lifetime)
    valid_from = min(common.first_seen, valid_until - timedelta(seconds=1))
    description = common.description or name
    indicator: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": deterministic_id("indicator", publisher.identity_id, pattern, generation),
        "created_by_ref": publisher.identity_id,
        "created": created,
        "modified": created,
        "name": name,
        "description": f"{description} (auto-generated by detector pipeline; see related campaign)",
        "indicator_types": sorted(indicator_types),
        "pattern": pattern,
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": _seconds(valid_from),
        "valid_until": _seconds(valid_until),
        "confidence": common.confidence,
        "object_marking_refs": [tlp.marking_id],
    }
    if labels:
        indicator["labels"] = sorted(labels)
    return indicator


def _proxy(detection: ProxyInput, publisher: Publisher, now: datetime, generation: int) -> list[dict[str, Any]]:
    common = detection.common
    kind = detection.proxy_kind
    labels = [f"{kind}-proxy"]
    extension: dict[str, Any] = {"extension_type": "property-extension", "proxy_kind": kind}
    if common.accounts_linked is not None:
        extension["accounts_linked"] = common.accounts_linked
    if detection.asn is not None:
        pattern = (
            f"[autonomous-system:number = {detection.asn}] OR [ipv4-addr:belongs_to_refs[*].number = {detection.asn}]"
        )
        name, lifetime = f"Traffic from AS{detection.asn} ({kind} proxy network)", LIFETIME["asn"]
        extension["exit_asn"] = detection.asn
    else:
        assert detection.value is not None
        network = ipaddress.ip_network(detection.value, strict=False)
        family = "ipv4-addr" if network.version == 4 else "ipv6-addr"
        if network.num_addresses == 1:
            pattern = f"[{family}:value = {stix_string(str(network.network_address))}]"
            what = f"exit {network.network_address}"
        else:
            pattern = f"[{family}:value ISSUBSET {stix_string(network.compressed)}]"
            what = f"range {network.compressed}"
        name = f"{kind.capitalize()} proxy {what} used for distillation traffic"
        lifetime = (
            LIFETIME[kind] if kind in ("residential", "mobile") and network.num_addresses == 1 else LIFETIME["network"]
        )
    types = ["anonymization"] + (["malicious-activity"] if kind == "datacenter" else [])
    indicator = _base_indicator(
        common,
        publisher,
        now,
        pattern=pattern,
        name=name,
        lifetime=lifetime,
        indicator_types=types,
        tlp=common.tlp,
        generation=generation,
        labels=labels,
    )
    indicator["extensions"] = {EXT_PROXY_CONTEXT: extension}
    return [indicator]


def _prompt(detection: PromptInput, publisher: Publisher, now: datetime, generation: int) -> list[dict[str, Any]]:
    common = detection.common
    label, title = CAPABILITY_LABELS.get(detection.capability, CAPABILITY_LABELS["other"])
    exact = f"[x-llm-prompt:hashes.'SHA-256' = {stix_string(detection.sha256)}]"
    indicators = [
        _base_indicator(
            common,
            publisher,
            now,
            pattern=exact,
            name=f"Distillation prompt template ({title}) - exact",
            lifetime=LIFETIME["prompt-sha"],
            indicator_types=["malicious-activity"],
            tlp=common.tlp,
            generation=generation,
            labels=[label],
        )
    ]
    fingerprint = detection.fingerprint
    if fingerprint is not None and not fingerprint.short:
        bands = ", ".join(stix_string(b) for b in sorted(fingerprint.lsh_bands))
        near = f"[x-llm-prompt:lsh_bands[*] IN ({bands})]"
        name = f"Distillation prompt template ({title}) - near-duplicate (keyed MinHash LSH, {fingerprint.key_id})"
        indicators.append(
            _base_indicator(
                common,
                publisher,
                now,
                pattern=near,
                name=name,
                lifetime=LIFETIME["prompt-lsh"],
                indicator_types=["malicious-activity"],
                tlp=common.tlp,
                generation=generation,
                labels=[label],
            )
        )
    return indicators


def _account(detection: AccountInput, publisher: Publisher, now: datetime, generation: int) -> list[dict[str, Any]]:
    common = detection.common
    kinds = ["anomalous-activity"]
    if detection.email_domains:
        domains = sorted({d.strip().casefold() for d in detection.email_domains})
        regex = "@(" + "|".join(_domain_regex(d) for d in domains) + ")$"
        pattern = f"[email-addr:value MATCHES {stix_string(regex)}]"
        return [
            _base_indicator(
                common,
                publisher,
                now,
                pattern=pattern,
                name="Throwaway mail domains used for bulk signups",
                lifetime=LIFETIME["email-domain"],
                indicator_types=kinds,
                tlp=common.tlp,
                generation=generation,
            )
        ]
    if detection.login_regex is not None:
        pattern = (
            f"[user-account:account_login MATCHES {stix_string(detection.login_regex)} AND "
            "user-account:account_type = 'x-llm-api']"
        )
        return [
            _base_indicator(
                common,
                publisher,
                now,
                pattern=pattern,
                name="Generated login names",
                lifetime=LIFETIME["login"],
                indicator_types=kinds,
                tlp=common.tlp,
                generation=generation,
            )
        ]
    if detection.cadence is not None:
        cadence = detection.cadence
        regex = "@" + _domain_regex(cadence.email_domain) + "$"
        pattern = (
            "[email-addr:belongs_to_ref.account_type = 'x-llm-api' AND "
            f"email-addr:value MATCHES {stix_string(regex)}] "
            f"REPEATS {cadence.count} TIMES WITHIN {cadence.within_seconds} SECONDS"
        )
        name = f"Signup burst: >= {cadence.count} new API accounts per {cadence.within_seconds} s on a throwaway domain"
        return [
            _base_indicator(
                common,
                publisher,
                now,
                pattern=pattern,
                name=name,
                lifetime=LIFETIME["cadence"],
                indicator_types=kinds,
                tlp=common.tlp,
                generation=generation,
            )
        ]
    # Sorted by (type, digest): the order the stix2 pattern normaliser puts the observation expressions in.
    terms = sorted(
        {
            (ident.type, hmac_identifier(publisher.community_key, ident.type, ident.value))
            for ident in detection.identifiers
        }
    )
    pattern = " OR ".join(
        f"[x-hashed-identifier:identifier_type = {stix_string(kind)} AND x-hashed-identifier:value = "
        f"{stix_string(digest)}]"
        for kind, digest in terms
    )
    # HMAC identifiers can be dictionary-tested by any key holder: never below AMBER+STRICT
    # (docs/design.md#d4-account-patterns).
    tlp = max(common.tlp, Tlp.AMBER_STRICT)
    return [
        _base_indicator(
            common,
            publisher,
            now,
            pattern=pattern,
            name=f"Hydra-cluster identifiers (HMAC {publisher.key_id})",
            lifetime=LIFETIME["identifier"],
            indicator_types=["malicious-activity"],
            tlp=tlp,
            generation=generation,
        )
    ]


def _domain_regex(domain: str) -> str:
    """A domain name as a regex: domains hold only letters, digits, dots and hyphens; only dots need escaping."""
    return domain.strip().casefold().replace(".", "\\.")


def _relationship(publisher: Publisher, now: datetime, source: str, kind: str, target: str, tlp: Tlp) -> dict[str, Any]:
    created = stix_timestamp(now)
    return {
        "type": "relationship",
        "spec_version": "2.1",
        "id": deterministic_id("relationship", publisher.identity_id, source, kind, target),
        "created_by_ref": publisher.identity_id,
        "created": created,
        "modified": created,
        "relationship_type": kind,
        "source_ref": source,
        "target_ref": target,
        "object_marking_refs": [tlp.marking_id],
    }


def campaign_id(publisher: Publisher, cluster: str) -> str:
    return deterministic_id("campaign", publisher.identity_id, cluster)


def convert(detection: DetectionInput, *, publisher: Publisher, now: datetime, generation: int = 0) -> Conversion:
    """The STIX objects of one detection (indicators, campaign, relationships, definitions, markings)."""
    if isinstance(detection, ProxyInput):
        indicators = _proxy(detection, publisher, now, generation)
        technique = ATLAS_SERVICE_PROXIES
    elif isinstance(detection, PromptInput):
        indicators = _prompt(detection, publisher, now, generation)
        technique = ATLAS_PROMPT_CRAFTING
    else:
        indicators = _account(detection, publisher, now, generation)
        technique = ATLAS_ESTABLISH_ACCOUNTS
    common = detection.common
    result = Conversion(indicators=indicators)
    levels = {Tlp(_level(i)) for i in indicators}
    published = max(levels)
    levels.add(Tlp.CLEAR)  # the identity's and extension definitions' marking
    if published > common.tlp:  # only hashed identifiers raise an indicator's level
        result.adjusted.append(
            f"tlp: raised from {common.tlp.label} to {published.label}: hashed identifiers are never shared "
            "below TLP:AMBER+STRICT (any holder of the community key can test guesses against them)"
        )
    definitions = extension_definitions()
    result.context.append(identity_object(publisher))
    if isinstance(detection, ProxyInput):
        result.context.append(definitions[EXT_PROXY_CONTEXT])
    elif isinstance(detection, PromptInput):
        result.context.append(definitions[EXT_LLM_PROMPT])
    elif detection.identifiers:
        result.context.append(definitions[EXT_HASHED_IDENTIFIER])
    if common.cluster:
        campaign_tlp = max(common.tlp, Tlp.AMBER)
        levels.add(campaign_tlp)
        if campaign_tlp > common.tlp:
            result.adjusted.append(
                f"tlp: the campaign of cluster {common.cluster} is published at {campaign_tlp.label}, not "
                f"{common.tlp.label}: a campaign links a cluster's indicators and is never shared below TLP:AMBER"
            )
        cid = campaign_id(publisher, common.cluster)
        created = stix_timestamp(now)
        result.campaign = {
            "type": "campaign",
            "spec_version": "2.1",
            "id": cid,
            "created_by_ref": publisher.identity_id,
            "created": created,
            "modified": created,
            "name": f"Hydra cluster {common.cluster}",
            "description": "Coordinated fraudulent API accounts behind proxy networks sending high-volume, "
            "narrowly focused prompts to distil model capabilities.",
            "first_seen": _seconds(common.first_seen),
            "last_seen": _seconds(common.last_seen),
            "objective": "Distil model capabilities via inference API",
            "confidence": common.confidence,
            "object_marking_refs": [campaign_tlp.marking_id],
        }
        for indicator in indicators:
            result.context.append(
                _relationship(publisher, now, indicator["id"], "indicates", cid, Tlp(_level(indicator)))
            )
        for target in (ATLAS_EXTRACT_MODEL, technique):
            result.context.append(_relationship(publisher, now, cid, "uses", target, campaign_tlp))
    result.context.extend(_marking_object(level) for level in sorted(levels))
    return result


def _level(obj: dict[str, Any]) -> int:
    from indicator_exchange.stix.markings import tlp_of

    level = tlp_of(obj)
    return int(level) if level is not None else int(Tlp.AMBER)


def _later(previous: str, now: datetime) -> str:
    """A ``modified`` strictly after ``previous`` (STIX versioning), and not before ``now``."""
    candidate = stix_timestamp(now)
    if candidate > previous:
        return candidate
    prev = datetime.strptime(previous[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    return stix_timestamp(prev + timedelta(milliseconds=1))


_SHARED_MERGE = ("confidence", "valid_from", "valid_until", "labels", "indicator_types", "first_seen", "last_seen")


def merge(existing: dict[str, Any], new: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The next version of ``existing`` given a re-detection ``new`` of the same object, or ``None`` when no
    shared property changes (no version is emitted for a repeat).

    Rules (reference §5 step 4): confidence = max; valid_from / first_seen = min; valid_until / last_seen = max;
    labels and indicator_types = union; proxy-context ``accounts_linked`` = max. Never versions a revoked object.
    """
    if existing.get("revoked") is True:
        return None
    merged = dict(existing)
    for key in _SHARED_MERGE:
        if key not in new:
            continue
        old, value = existing.get(key), new[key]
        if old is None:
            merged[key] = value
        elif key in ("labels", "indicator_types"):
            merged[key] = sorted(set(old) | set(value))
        elif key in ("valid_from", "first_seen"):
            merged[key] = min(old, value)
        else:
            merged[key] = max(old, value)
    if EXT_PROXY_CONTEXT in (new.get("extensions") or {}):
        old_ext = dict((existing.get("extensions") or {}).get(EXT_PROXY_CONTEXT, {}))
        new_ext = new["extensions"][EXT_PROXY_CONTEXT]
        if "accounts_linked" in new_ext:
            old_ext["accounts_linked"] = max(old_ext.get("accounts_linked", 0), new_ext["accounts_linked"])
        merged["extensions"] = {**(existing.get("extensions") or {}), EXT_PROXY_CONTEXT: {**new_ext, **old_ext}}
    if merged == existing:
        return None
    merged["modified"] = _later(str(existing["modified"]), now)
    return merged


def kept_on_merge(existing: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a re-detection ``new`` asked for that the next version of ``existing`` does not take (``merge``
    keeps the stored object's TLP marking and proxy kind), each as a message saying why."""
    kept = []
    what = "indicator" if existing.get("type") == "indicator" else str(existing.get("type"))
    stored_tlp, asked_tlp = tlp_of(existing), tlp_of(new)
    if stored_tlp is not None and asked_tlp is not None and stored_tlp != asked_tlp:
        how = " (revoke it with false_positive, then re-detect, to publish it anew)" if what == "indicator" else ""
        kept.append(
            f"tlp: the stored {what} stays {stored_tlp.label}, not {asked_tlp.label}: a new version never changes "
            f"an object's marking{how}"
        )
    stored_ext = (existing.get("extensions") or {}).get(EXT_PROXY_CONTEXT) or {}
    asked_ext = (new.get("extensions") or {}).get(EXT_PROXY_CONTEXT) or {}
    stored_kind, asked_kind = stored_ext.get("proxy_kind"), asked_ext.get("proxy_kind")
    if stored_kind is not None and asked_kind is not None and stored_kind != asked_kind:
        kept.append(
            f"proxy_kind: the stored indicator stays {stored_kind}, not {asked_kind}: its first classification is "
            f"kept; {asked_kind}-proxy joins its labels"
        )
    return kept


def revoke(existing: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The revoked final version of ``existing`` (a false positive); STIX allows no version after it."""
    revoked = dict(existing)
    revoked["revoked"] = True
    revoked["modified"] = _later(str(existing["modified"]), now)
    return revoked


SIGHTING_WEIGHT = 0.5
"""How much one partner sighting counts: confidence c rises to 1 - (1 - c)(1 - 0.5 s) (both as fractions),
a noisy-OR that treats the partner as an independent but discounted detector; never above 95 from sightings."""


def raise_confidence(current: int, sighting_confidence: int | None) -> int:
    """The documented rule for raising an indicator's confidence from a partner sighting."""
    s = (sighting_confidence if sighting_confidence is not None else 50) / 100
    combined = 1 - (1 - current / 100) * (1 - SIGHTING_WEIGHT * s)
    return max(current, min(95, round(combined * 100)))


def prompt_observable(fingerprint: PromptFingerprint) -> dict[str, Any]:
    """The ``x-llm-prompt`` SCO a partner builds from its own traffic (no raw text), for matching with
    stix2-matcher. The id is UUIDv5 in the SCO namespace over the id-contributing properties."""
    contributing = {"hashes": {"SHA-256": fingerprint.sha256}, "normalization": NORMALIZATION}
    sco_namespace = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
    canonical = json.dumps(contributing, sort_keys=True, separators=(",", ":"))
    return {
        "type": "x-llm-prompt",
        "spec_version": "2.1",
        "id": f"x-llm-prompt--{uuid.uuid5(sco_namespace, canonical)}",
        "normalization": NORMALIZATION,
        "hashes": {"SHA-256": fingerprint.sha256},
        "normalized_length": fingerprint.normalized_length,
        "fingerprint_key_id": fingerprint.key_id,
        "lsh_bands": list(fingerprint.lsh_bands),
        "extensions": {EXT_LLM_PROMPT: {"extension_type": "new-sco"}},
    }


def sighting(
    publisher: Publisher, *, indicator_id: str, count: int, first_seen: datetime, last_seen: datetime,
    confidence: int, tlp: Tlp, now: datetime, description: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Our sighting of an indicator (partner feedback, reference §4.3): one per indicator and reporting day."""
    created = stix_timestamp(now)
    day = first_seen.astimezone(UTC).strftime("%Y-%m-%d")
    obj: dict[str, Any] = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": deterministic_id("sighting", publisher.identity_id, indicator_id, day),
        "created_by_ref": publisher.identity_id,
        "created": created,
        "modified": created,
        "first_seen": _seconds(first_seen),
        "last_seen": _seconds(max(last_seen, first_seen)),
        "count": count,
        "sighting_of_ref": indicator_id,
        "where_sighted_refs": [publisher.identity_id],
        "summary": False,
        "confidence": confidence,
        "object_marking_refs": [tlp.marking_id],
    }
    if description:
        obj["description"] = description
    return obj
