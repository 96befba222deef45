"""Matches aggregated into STIX sightings, one per indicator, for the collection each indicator came from."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from indicator_exchange.match.events import Match
from indicator_exchange.stix.detections import Publisher
from indicator_exchange.stix.markings import Tlp, tlp_of
from indicator_exchange.stix.sightings import sighting


@dataclass(slots=True)
class _Tally:
    count: int
    first: datetime
    last: datetime
    verified: bool


def aggregate(
    matches: Iterable[Match],
    indicators: Mapping[str, Mapping[str, Any]],
    *,
    publisher: Publisher,
    now: datetime,
) -> list[dict[str, Any]]:
    """One sighting per matched indicator: count, first/last seen, our identity as where sighted.

    Confidence is ours in the observation: 80 when every match was verified, 40 when some were only LSH
    candidates. The marking is the indicator's own (a sighting reveals at least as much as what it sights).
    """
    tallies: dict[str, _Tally] = {}
    for match in matches:
        tally = tallies.get(match.indicator_id)
        if tally is None:
            tallies[match.indicator_id] = _Tally(1, match.timestamp, match.timestamp, match.verified)
        else:
            tally.count += 1
            tally.first = min(tally.first, match.timestamp)
            tally.last = max(tally.last, match.timestamp)
            tally.verified = tally.verified and match.verified
    sightings = []
    for indicator_id, tally in sorted(tallies.items()):
        level = tlp_of(indicators.get(indicator_id, {}))
        sightings.append(
            sighting(
                publisher,
                indicator_id=indicator_id,
                count=tally.count,
                first_seen=tally.first,
                last_seen=tally.last,
                confidence=80 if tally.verified else 40,
                tlp=level or Tlp.AMBER,
                now=now,
                description=f"Matched on {tally.count} events by indicator-exchange.",
            )
        )
    return sightings


def by_origin(sightings: Iterable[dict[str, Any]], origin: Mapping[str, Any]) -> dict[Any, list[dict[str, Any]]]:
    """Group sightings by the collection their indicator came from."""
    grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for item in sightings:
        grouped[origin[item["sighting_of_ref"]]].append(item)
    return dict(grouped)
