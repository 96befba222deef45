"""The "exceptions" section: refused detections, rejected objects, API keys created and revoked."""

import uuid
from collections import Counter

from sqlalchemy.orm import Session

from indicator_exchange.reports.context import ReportContext, from_us
from indicator_exchange.reports.model import Exceptions, KeyEvent, ReasonCount, Refusal, Rejection
from indicator_exchange.store import reports as store
from indicator_exchange.store.models import ApiKey, IngestRefusal, Principal

MAX_LISTED = 200


def exceptions_section(session: Session, ctx: ReportContext) -> Exceptions:
    start, end = from_us(ctx.start_us), from_us(ctx.end_us)
    principal_id = ctx.partner.id if ctx.partner else None
    only_source = ctx.partner is None and ctx.partner_source is not None
    # Refused detections are ours (ingest); a feed source alone has none.
    reasons: list[tuple[str, int]] = []
    recent: list[IngestRefusal] = []
    if not only_source:
        collections = ctx.scope.collection_ids
        reasons = store.refusal_reasons(
            session, start=start, end=end, collection_ids=collections, principal_id=principal_id
        )
        recent = store.recent_refusals(
            session, start=start, end=end, collection_ids=collections, principal_id=principal_id, limit=MAX_LISTED
        )

    rejections: list[Rejection] = []
    rejection_reasons: Counter[str] = Counter()
    if not only_source:
        for status in store.statuses(session, start=start, end=end, collection_ids=ctx.scope.collection_ids):
            if not status.failure_count or (principal_id is not None and status.principal_id != principal_id):
                continue
            who = ctx.principals.get(status.principal_id) if status.principal_id else None
            for failure in status.failures:
                reason = str(failure.get("message") or "refused")
                rejection_reasons[_reason_class(reason)] += 1
                object_id = failure.get("id")
                rejections.append(
                    Rejection(
                        at=status.created_at,
                        partner=who.name if who else None,
                        via="push",
                        collection_id=str(status.collection_id) if status.collection_id else None,
                        object_id=str(object_id) if object_id else None,
                        reason=reason,
                    )
                )
    if ctx.partner is None or ctx.partner_source is not None:
        for at, source, collection_id, object_id, reason in store.sync_rejections(
            session, start=start, end=end, collection_ids=ctx.scope.collection_ids
        ):
            if ctx.partner_source is not None and source != ctx.partner_source:
                continue
            rejection_reasons[_reason_class(reason)] += 1
            rejections.append(
                Rejection(
                    at=at,
                    partner=source,
                    via="pull",
                    collection_id=str(collection_id),
                    object_id=object_id,
                    reason=reason,
                )
            )
    rejections.sort(key=lambda r: r.at, reverse=True)

    def key_events(found: list[tuple[ApiKey, Principal]], revoked: bool) -> list[KeyEvent]:
        if only_source:
            return []
        return [
            KeyEvent(
                at=(key.revoked_at if revoked else key.created_at) or key.created_at,
                key_id=key.key_id,
                principal=owner.name,
                principal_kind=owner.kind,
            )
            for key, owner in found
            if principal_id is None or owner.id == principal_id
        ]

    return Exceptions(
        refused_detections=sum(n for _, n in reasons),
        refusal_reasons=[ReasonCount(reason=r, count=n) for r, n in reasons],
        refusals=[
            Refusal(
                at=r.at,
                principal=_principal_name(ctx, r.principal_id),
                detector=r.detector,
                kind=r.kind,
                field=r.field,
                reason=r.reason,
            )
            for r in recent
        ],
        rejected_objects=len(rejections),
        rejection_reasons=[
            ReasonCount(reason=r, count=n)
            for r, n in sorted(rejection_reasons.items(), key=lambda item: (-item[1], item[0]))
        ],
        rejections=rejections[:MAX_LISTED],
        keys_created=key_events(store.keys_created(session, start=start, end=end), revoked=False),
        keys_revoked=key_events(store.keys_revoked(session, start=start, end=end), revoked=True),
    )


def _principal_name(ctx: ReportContext, principal_id: uuid.UUID | None) -> str | None:
    who = ctx.principals.get(principal_id) if principal_id else None
    return who.name if who else None


def _reason_class(reason: str) -> str:
    """A failure message without its object-specific prefix (``objects[3]: ``), to count alike reasons together."""
    head, sep, tail = reason.partition(": ")
    return tail if sep and head.startswith("objects[") else reason
