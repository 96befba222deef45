"""From a validated detection (the pydantic contract) to the typed inputs of ``stix.convert``."""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from pydantic import TypeAdapter

from indicator_exchange.ingest.schemas import (
    AccountPatternDetection,
    Detection,
    PromptSignatureDetection,
    ProxyIpDetection,
)
from indicator_exchange.settings import Settings
from indicator_exchange.stix import convert as stix
from indicator_exchange.stix.fingerprint import fingerprint_prompt, minhash_similarity
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store.ingest import DetectionFacts

DETECTION = TypeAdapter(Detection)
SCAFFOLD_SIMILARITY = 0.5


class Refused(Exception):
    """A valid detection that must not be published (e.g. a public scaffold prompt)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Planned:
    """One line's conversion, plus what the provenance table keeps of it."""

    detection: ProxyIpDetection | PromptSignatureDetection | AccountPatternDetection
    conversion: stix.Conversion
    facts: DetectionFacts
    generation: int = 0


def kind_of(value: object) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) and len(kind) <= 32 else None


def publisher_of(settings: Settings) -> stix.Publisher:
    return stix.Publisher(
        identity_id=settings.identity_id,
        organisation=settings.organisation_name,
        community_key=settings.community_key_bytes,
        key_id=settings.community_key_id,
    )


@lru_cache(maxsize=4)
def _scaffolds(key: bytes, key_id: str) -> list[tuple[str, tuple[int, ...], str]]:
    data = json.loads(resources.files("indicator_exchange.ingest").joinpath("data/public_scaffolds.json").read_text())
    out = []
    for name, text in data["scaffolds"].items():
        fp = fingerprint_prompt(text, key=key, key_id=key_id)
        out.append((fp.sha256, fp.minhash, name))
    return out


def _common(detection: ProxyIpDetection | PromptSignatureDetection | AccountPatternDetection) -> stix.Common:
    return stix.Common(
        detector=detection.detector,
        first_seen=detection.first_seen,
        last_seen=detection.last_seen,
        confidence=detection.confidence,
        tlp=Tlp.parse(detection.tlp),
        cluster=detection.cluster,
        valid_until=detection.valid_until,
        description=detection.description,
        accounts_linked=detection.accounts_linked,
        requests=detection.requests,
    )


def validate(value: object) -> ProxyIpDetection | PromptSignatureDetection | AccountPatternDetection:
    """Raises pydantic's ValidationError (whose messages never echo the input) for a bad detection."""
    return DETECTION.validate_python(value)


def plan(
    detection: ProxyIpDetection | PromptSignatureDetection | AccountPatternDetection,
    *,
    settings: Settings,
    now: datetime,
    generation: int = 0,
) -> Planned:
    publisher = publisher_of(settings)
    common = _common(detection)
    item: stix.DetectionInput
    if isinstance(detection, ProxyIpDetection):
        item = stix.ProxyInput(common=common, proxy_kind=detection.proxy_kind, value=detection.value, asn=detection.asn)
    elif isinstance(detection, PromptSignatureDetection):
        if detection.prompt_text is not None:
            fingerprint = fingerprint_prompt(
                detection.prompt_text, key=publisher.community_key, key_id=publisher.key_id
            )
            for sha, minhash, name in _scaffolds(publisher.community_key, publisher.key_id):
                if sha == fingerprint.sha256 or minhash_similarity(minhash, fingerprint.minhash) >= SCAFFOLD_SIMILARITY:
                    raise Refused("prompt_text", f"matches the public scaffold '{name}'; not published")
            item = stix.PromptInput(
                common=common, capability=detection.capability, sha256=fingerprint.sha256, fingerprint=fingerprint
            )
        else:
            assert detection.prompt_sha256 is not None
            item = stix.PromptInput(common=common, capability=detection.capability, sha256=detection.prompt_sha256)
    else:
        identifiers = tuple(stix.Identifier(type=i.type, value=i.value) for i in detection.identifiers or ())
        cadence = detection.cadence
        item = stix.AccountInput(
            common=common,
            email_domains=tuple(detection.email_domains or ()),
            login_regex=detection.login_regex,
            cadence=stix.Cadence(cadence.count, cadence.within_seconds, cadence.email_domain) if cadence else None,
            identifiers=identifiers,
        )
    conversion = stix.convert(item, publisher=publisher, now=now, generation=generation)
    facts = DetectionFacts(
        detector=detection.detector,
        kind=detection.kind,
        cluster=detection.cluster,
        first_seen=detection.first_seen,
        last_seen=detection.last_seen,
        confidence=detection.confidence,
        accounts_linked=detection.accounts_linked,
        requests=detection.requests,
    )
    return Planned(detection=detection, conversion=conversion, facts=facts, generation=generation)


def merge(existing: dict[str, Any], new: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    return stix.merge(existing, new, now)


def revoke(existing: dict[str, Any], now: datetime) -> dict[str, Any]:
    return stix.revoke(existing, now)
