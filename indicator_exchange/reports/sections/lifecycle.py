"""The "lifecycle" section: our indicators decayed below threshold, revoked by feedback, refused by warninglists."""

import re
from collections import Counter
from datetime import datetime

from sqlalchemy.orm import Session

from indicator_exchange.lifecycle import feedback
from indicator_exchange.reports.context import ReportContext, from_us
from indicator_exchange.reports.model import Lifecycle, LifecycleRevocation, ReasonCount
from indicator_exchange.settings import get_settings
from indicator_exchange.store import lifecycle as lifecycle_store
from indicator_exchange.store import reports as store

# What lifecycle.warninglists.Hit.reason() writes into an ingest refusal.
_LIST = re.compile(r"on the warninglist '([^']+)'")


def lifecycle_section(session: Session, ctx: ReportContext, now: datetime) -> Lifecycle:
    start, end = from_us(ctx.start_us), from_us(ctx.end_us)
    settings = get_settings()
    decayed: Counter[str] = Counter()
    ours = lifecycle_store.our_latest_indicators(session, ctx.identity, ctx.scope.collection_ids)
    rows = lifecycle_store.feedback_for(session, [str(o["id"]) for o in ours])
    for obj in ours:
        score = feedback.score_of(obj, feedback.tally(rows.get(str(obj["id"]), [])), settings=settings, now=now)
        if not score.enforced:
            decayed[score.kind] += 1
    revoked, extended = [], 0
    for event in lifecycle_store.events_between(session, start, end):
        if ctx.scope.collection_ids is not None and event.collection_id not in ctx.scope.collection_ids:
            continue
        if event.action == "revoked":
            revoked.append(
                LifecycleRevocation(
                    at=event.at, indicator_id=event.indicator_id, reason=event.reason, organisations=event.organisations
                )
            )
        elif event.action == "extended":
            extended += 1
    lists: Counter[str] = Counter()
    principal_id = ctx.partner.id if ctx.partner else None
    for reason, count in store.refusal_reasons(
        session, start=start, end=end, collection_ids=ctx.scope.collection_ids, principal_id=principal_id
    ):
        for name in dict.fromkeys(_LIST.findall(reason)):
            lists[name] += count
    return Lifecycle(
        decayed=sum(decayed.values()),
        decayed_by_kind=[ReasonCount(reason=k, count=n) for k, n in sorted(decayed.items())],
        revoked_by_feedback=revoked,
        extended=extended,
        refused_by_warninglist=[
            ReasonCount(reason=k, count=n) for k, n in sorted(lists.items(), key=lambda i: (-i[1], i[0]))
        ],
    )
