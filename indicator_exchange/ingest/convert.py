"""From a validated detection (the pydantic contract) to the typed inputs of ``convert``."""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from indicator_exchange.ingest.schemas import (
    AccountPatternDetection,
    Detection,
    PromptSignatureDetection,
    ProxyIpDetection,
)
from indicator_exchange.settings import Settings
from indicator_exchange.stix.convert import Conversion, convert
from indicator_exchange.stix.detections import (
    AccountInput,
    Cadence,
    Common,
    DetectionInput,
    PromptInput,
    ProxyInput,
    Publisher,
)
from indicator_exchange.stix.fingerprint import NUM_PERM, PromptFingerprint, fingerprint_prompt
from indicator_exchange.stix.identifiers import Identifier
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
    conversion: Conversion
    facts: DetectionFacts
    generation: int = 0


def kind_of(value: object) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) and len(kind) <= 32 else None


def publisher_of(settings: Settings) -> Publisher:
    return Publisher(
        identity_id=settings.identity_id,
        organisation=settings.organisation_name,
        community_key=settings.community_key_bytes,
        key_id=settings.community_key_id,
    )


@dataclass(frozen=True)
class _Scaffolds:
    """The allowlisted public scaffolds' fingerprints: SHA-256s, and MinHash signatures as one matrix so a
    prompt is compared with all of them in one vector operation."""

    names: tuple[str, ...]
    sha256s: tuple[str, ...]
    minhashes: np.ndarray[Any, np.dtype[np.uint64]]

    def match(self, fingerprint: PromptFingerprint) -> str | None:
        """The scaffold the prompt is, or is a near-duplicate of (``minhash_similarity`` >= the threshold)."""
        if fingerprint.sha256 in self.sha256s:
            return self.names[self.sha256s.index(fingerprint.sha256)]
        if not self.names:
            return None
        similarity = (self.minhashes == np.asarray(fingerprint.minhash, dtype=np.uint64)).mean(axis=1)
        hits = np.flatnonzero(similarity >= SCAFFOLD_SIMILARITY)
        return self.names[int(hits[0])] if hits.size else None


def scaffold_texts(extra_file: str | None) -> dict[str, str]:
    """The built-in public scaffolds, plus those of ``IX_SCAFFOLD_ALLOWLIST`` (checked when the settings load;
    a name in both takes the file's text)."""
    builtin = resources.files("indicator_exchange.ingest").joinpath("data/public_scaffolds.json").read_text()
    texts: dict[str, str] = dict(json.loads(builtin)["scaffolds"])
    if extra_file:
        texts.update(json.loads(Path(extra_file).read_text(encoding="utf-8"))["scaffolds"])
    return texts


@lru_cache(maxsize=4)
def _scaffolds(key: bytes, key_id: str, extra_file: str | None) -> _Scaffolds:
    texts = scaffold_texts(extra_file)
    fingerprints = {name: fingerprint_prompt(text, key=key, key_id=key_id) for name, text in texts.items()}
    return _Scaffolds(
        names=tuple(fingerprints),
        sha256s=tuple(fp.sha256 for fp in fingerprints.values()),
        minhashes=np.array([fp.minhash for fp in fingerprints.values()], dtype=np.uint64).reshape(-1, NUM_PERM),
    )


def _common(detection: ProxyIpDetection | PromptSignatureDetection | AccountPatternDetection) -> Common:
    return Common(
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
    item: DetectionInput
    if isinstance(detection, ProxyIpDetection):
        item = ProxyInput(common=common, proxy_kind=detection.proxy_kind, value=detection.value, asn=detection.asn)
    elif isinstance(detection, PromptSignatureDetection):
        if detection.prompt_text is not None:
            fingerprint = fingerprint_prompt(
                detection.prompt_text, key=publisher.community_key, key_id=publisher.key_id
            )
            scaffolds = _scaffolds(publisher.community_key, publisher.key_id, settings.scaffold_allowlist)
            scaffold = scaffolds.match(fingerprint)
            if scaffold is not None:
                raise Refused("prompt_text", f"matches the public scaffold '{scaffold}'; not published")
            item = PromptInput(
                common=common, capability=detection.capability, sha256=fingerprint.sha256, fingerprint=fingerprint
            )
        else:
            assert detection.prompt_sha256 is not None
            item = PromptInput(common=common, capability=detection.capability, sha256=detection.prompt_sha256)
    else:
        identifiers = tuple(Identifier(type=i.type, value=i.value, hmac=i.hmac) for i in detection.identifiers or ())
        cadence = detection.cadence
        item = AccountInput(
            common=common,
            email_domains=tuple(detection.email_domains or ()),
            login_regex=detection.login_regex,
            cadence=Cadence(cadence.count, cadence.within_seconds, cadence.email_domain) if cadence else None,
            identifiers=identifiers,
        )
    conversion = convert(item, publisher=publisher, now=now, generation=generation)
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
