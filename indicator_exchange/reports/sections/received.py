"""The "received" section: objects partners pushed and pull feeds stored, with what was refused."""

import uuid
from collections import Counter, defaultdict

from sqlalchemy.orm import Session

from indicator_exchange.reports.context import ReportContext, from_us
from indicator_exchange.reports.model import Received, ReceivedRow
from indicator_exchange.reports.sections.sightings import sightings_section
from indicator_exchange.store import reports as store


def received_section(session: Session, ctx: ReportContext, activity: Counter[int]) -> Received:
    rows: dict[tuple[str, str, uuid.UUID], dict[str, int]] = defaultdict(Counter)
    for added_by, collection_id, stix_type, ours, slot, level, count in store.version_counts(
        session, ctx.scope, start_us=ctx.start_us, end_us=ctx.end_us, bucket_us=ctx.bucket_us, our_identity=ctx.identity
    ):
        via, name = ctx.origin(added_by, ctx.identity if ours else None, collection_id)
        if via == "ours" or not ctx.wants_partner(via, name):
            continue
        counter = rows[(name, via, collection_id)]
        counter["objects"] += count
        counter["indicators"] += count if stix_type == "indicator" else 0
        counter["sightings"] += count if stix_type == "sighting" else 0
        activity[slot] += count
        ctx.mark(level)

    submitted: Counter[tuple[str, uuid.UUID]] = Counter()
    failed: Counter[tuple[str, uuid.UUID]] = Counter()
    for status in store.statuses(
        session, start=from_us(ctx.start_us), end=from_us(ctx.end_us), collection_ids=ctx.scope.collection_ids
    ):
        who = ctx.principals.get(status.principal_id) if status.principal_id else None
        if who is None or who.kind != "partner" or status.collection_id is None:
            continue
        if not ctx.wants_partner("push", who.name):
            continue
        submitted[(who.name, status.collection_id)] += status.total_count
        failed[(who.name, status.collection_id)] += status.failure_count
        rows.setdefault((who.name, "push", status.collection_id), Counter())
    for _at, source, collection_id, _object_id, _reason in store.sync_rejections(
        session, start=from_us(ctx.start_us), end=from_us(ctx.end_us), collection_ids=ctx.scope.collection_ids
    ):
        if not ctx.wants_partner("pull", source):
            continue
        name = ", ".join(ctx.pull_sources.get(collection_id, [source]))
        failed[(name, collection_id)] += 1
        rows.setdefault((name, "pull", collection_id), Counter())

    result = [
        ReceivedRow(
            partner=name,
            via=via,
            collection_id=str(collection_id),
            collection_title=ctx.collections[collection_id].title if collection_id in ctx.collections else "",
            objects=counter.get("objects", 0),
            indicators=counter.get("indicators", 0),
            sightings=counter.get("sightings", 0),
            submitted=submitted.get((name, collection_id), 0),
            failed=failed.get((name, collection_id), 0),
        )
        for (name, via, collection_id), counter in rows.items()
    ]
    result.sort(key=lambda r: (r.partner, r.via, r.collection_title, r.collection_id))
    return Received(rows=result, objects=sum(r.objects for r in result), sightings=sightings_section(session, ctx))
