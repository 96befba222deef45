"""The sightings part of "received": partners' sightings of indicators and how confidence moved."""

from collections import defaultdict

from sqlalchemy.orm import Session

from indicator_exchange.reports.context import ReportContext, loads_object
from indicator_exchange.reports.model import SightingEffect, Sightings
from indicator_exchange.store import reports as store

MAX_SIGHTED = 50


def sightings_section(session: Session, ctx: ReportContext) -> Sightings:
    per_indicator: dict[str, list[int]] = {}  # indicator -> [sightings, observations, first date_added]
    seen: set[str] = set()
    for row in store.versions_added(session, ctx.scope, start_us=ctx.start_us, end_us=ctx.end_us, types=["sighting"]):
        via, name = ctx.origin(row.added_by, row.created_by_ref, row.collection_id)
        if via == "ours" or not ctx.wants_partner(via, name) or row.stix_id in seen:
            continue
        seen.add(row.stix_id)
        obj = loads_object(row.raw)
        target = obj.get("sighting_of_ref")
        count = obj.get("count")
        observed = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else 1
        if not isinstance(target, str):
            continue
        entry = per_indicator.setdefault(target, [0, 0, row.date_added])
        entry[0] += 1
        entry[1] += observed

    timelines: dict[str, list[tuple[int, int, int | None, str | None, bool]]] = defaultdict(list)
    indicator_ids = sorted(i for i in per_indicator if i.startswith("indicator--"))
    for row in store.versions_of(session, ctx.lookup, indicator_ids):
        obj = loads_object(row.raw)
        confidence = obj.get("confidence")
        title = obj.get("name")
        ours = ctx.origin(row.added_by, row.created_by_ref, row.collection_id)[0] == "ours"
        timelines[row.stix_id].append(
            (
                row.date_added,
                row.version,
                confidence if isinstance(confidence, int) else None,
                title if isinstance(title, str) else None,
                ours,
            )
        )

    effects: list[SightingEffect] = []
    raised = lowered = unchanged = 0
    changes: list[int] = []
    of_ours = 0
    for indicator_id, (count, observations, first_added) in per_indicator.items():
        timeline = sorted(timelines.get(indicator_id, []))
        if any(entry[4] for entry in timeline):
            of_ours += count
        before = _confidence_at(timeline, first_added, inclusive=False)
        after = _confidence_at(timeline, ctx.end_us, inclusive=False)
        if before is not None and after is not None:
            changes.append(after - before)
            if after > before:
                raised += 1
            elif after < before:
                lowered += 1
            else:
                unchanged += 1
        latest_name = next((entry[3] for entry in reversed(timeline) if entry[3]), None)
        effects.append(
            SightingEffect(
                indicator_id=indicator_id,
                indicator_name=latest_name,
                sightings=count,
                observations=observations,
                confidence_before=before,
                confidence_after=after,
            )
        )
    effects.sort(key=lambda e: (-e.sightings, e.indicator_id))
    return Sightings(
        received=len(seen),
        observations=sum(e.observations for e in effects),
        indicators_sighted=len(per_indicator),
        of_our_indicators=of_ours,
        confidence_raised=raised,
        confidence_lowered=lowered,
        confidence_unchanged=unchanged,
        mean_confidence_change=round(sum(changes) / len(changes), 2) if changes else None,
        top=effects[:MAX_SIGHTED],
    )


def _confidence_at(
    timeline: list[tuple[int, int, int | None, str | None, bool]], moment: int, *, inclusive: bool
) -> int | None:
    """Confidence of the highest version stored before ``moment``."""
    stored = [entry for entry in timeline if entry[0] < moment or (inclusive and entry[0] == moment)]
    if not stored:
        return None
    return max(stored, key=lambda entry: entry[1])[2]
