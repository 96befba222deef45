"""Detections to STIX 2.1, exactly as docs/design.md (D1 to D8) and docs/reference/stix-model.md decide.

Inputs are the small typed records of ``stix.detections`` so this package depends on nothing else of the app.
``convert`` assembles one detection's objects: its indicators (``stix.indicators``), the campaign of its
cluster with the relationships, and the context objects every reader needs to resolve them.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from indicator_exchange.stix.detections import DetectionInput, PromptInput, ProxyInput, Publisher
from indicator_exchange.stix.extensions import (
    EXT_HASHED_IDENTIFIER,
    EXT_LLM_PROMPT,
    EXT_PROXY_CONTEXT,
    extension_definitions,
)
from indicator_exchange.stix.ids import deterministic_id, stix_seconds, stix_timestamp
from indicator_exchange.stix.indicators import account_indicators, prompt_indicators, proxy_indicators
from indicator_exchange.stix.markings import Tlp, tlp_of
from indicator_exchange.stix.shapes import Campaign, Indicator

# MITRE ATLAS techniques, by MITRE's own STIX ids (docs/reference/stix-model.md §4.2). Referenced, never stubbed.
ATLAS_EXTRACT_MODEL = "attack-pattern--3f567912-629a-5e0b-ab0c-0102977c2d6c"  # AML.T0024.002
ATLAS_SERVICE_PROXIES = "attack-pattern--647ac4ac-b2bc-53f7-ab83-81f421a1f0b5"  # AML.T0008.005
ATLAS_PROMPT_CRAFTING = "attack-pattern--6e148299-0460-5d0b-9741-467437464d3d"  # AML.T0065
ATLAS_ESTABLISH_ACCOUNTS = "attack-pattern--d3d7763a-58e1-5e38-84fd-3abea967cb08"  # AML.T0021


@dataclass(slots=True)
class Conversion:
    """The STIX of one detection: versioned objects (indicators, the campaign) and immutable context, and
    ``adjusted``: where the published objects differ from what the detection asked for, and why."""

    indicators: list[Indicator] = field(default_factory=list)
    campaign: Campaign | None = None
    # Immutable objects every reader needs to resolve the versioned ones: identity, extension definitions,
    # relationships, marking definitions.
    context: list[dict[str, Any]] = field(default_factory=list)
    adjusted: list[str] = field(default_factory=list)

    @property
    def versioned(self) -> list[Indicator | Campaign]:
        return [*self.indicators, *([self.campaign] if self.campaign else [])]


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
        indicators = proxy_indicators(detection, publisher, now, generation)
        technique = ATLAS_SERVICE_PROXIES
    elif isinstance(detection, PromptInput):
        indicators = prompt_indicators(detection, publisher, now, generation)
        technique = ATLAS_PROMPT_CRAFTING
    else:
        indicators = account_indicators(detection, publisher, now, generation)
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
            "first_seen": stix_seconds(common.first_seen),
            "last_seen": stix_seconds(common.last_seen),
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


def _level(obj: Mapping[str, Any]) -> int:
    level = tlp_of(obj)
    return int(level) if level is not None else int(Tlp.AMBER)
