"""Sightings: ours of a partner's indicator, and how a partner's sighting raises an indicator's confidence."""

from datetime import UTC, datetime
from typing import Any

from indicator_exchange.stix.detections import Publisher
from indicator_exchange.stix.ids import deterministic_id, stix_seconds, stix_timestamp
from indicator_exchange.stix.markings import Tlp

SIGHTING_WEIGHT = 0.5
"""How much one partner sighting counts: confidence c rises to 1 - (1 - c)(1 - 0.5 s) (both as fractions),
a noisy-OR that treats the partner as an independent but discounted detector; never above 95 from sightings."""


def raise_confidence(current: int, sighting_confidence: int | None) -> int:
    """The documented rule for raising an indicator's confidence from a partner sighting."""
    s = (sighting_confidence if sighting_confidence is not None else 50) / 100
    combined = 1 - (1 - current / 100) * (1 - SIGHTING_WEIGHT * s)
    return max(current, min(95, round(combined * 100)))


def sighting(
    publisher: Publisher,
    *,
    indicator_id: str,
    count: int,
    first_seen: datetime,
    last_seen: datetime,
    confidence: int,
    tlp: Tlp,
    now: datetime,
    description: str | None = None,
) -> dict[str, Any]:
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
        "first_seen": stix_seconds(first_seen),
        "last_seen": stix_seconds(max(last_seen, first_seen)),
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
