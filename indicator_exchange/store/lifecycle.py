"""Persistence of the indicator lifecycle: feedback rows, lifecycle events, and indicators across collections."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select, true
from sqlalchemy.orm import Session

from indicator_exchange.store.bulk import one_of
from indicator_exchange.store.models import Collection, IndicatorFeedback, LifecycleEvent, ObjectVersion


@dataclass(frozen=True, slots=True)
class StoredIndicator:
    """The latest version of an indicator in one collection."""

    collection_id: uuid.UUID
    default_tlp: int
    tlp: int | None
    created_by_ref: str | None
    revoked: bool
    obj: dict[str, object]


def latest_copies(session: Session, stix_id: str) -> list[StoredIndicator]:
    """Every collection's latest version of ``stix_id``, oldest collection first."""
    rows = session.execute(
        select(ObjectVersion, Collection.default_tlp)
        .join(Collection, Collection.id == ObjectVersion.collection_id)
        .where(ObjectVersion.stix_id == stix_id, ObjectVersion.is_latest == true())
        .order_by(Collection.created_at, Collection.id)
    ).all()
    return [
        StoredIndicator(row.collection_id, default_tlp, row.tlp, row.created_by_ref, row.revoked, orjson.loads(row.raw))
        for row, default_tlp in rows
    ]


def add_feedback(session: Session, rows: Sequence[IndicatorFeedback]) -> int:
    """Store the rows not stored yet (same indicator, feedback id and version); how many were new."""
    added = 0
    for row in rows:
        exists = session.scalar(
            select(IndicatorFeedback.id).where(
                IndicatorFeedback.indicator_id == row.indicator_id,
                IndicatorFeedback.feedback_id == row.feedback_id,
                IndicatorFeedback.feedback_version == row.feedback_version,
            )
        )
        if exists is None:
            session.add(row)
            added += 1
    session.flush()
    return added


def feedback_of(session: Session, indicator_id: str) -> list[IndicatorFeedback]:
    """Every verdict on ``indicator_id``, oldest first."""
    return list(
        session.scalars(
            select(IndicatorFeedback)
            .where(IndicatorFeedback.indicator_id == indicator_id)
            .order_by(IndicatorFeedback.observed_at, IndicatorFeedback.id)
        )
    )


def add_event(session: Session, event: LifecycleEvent) -> None:
    session.add(event)
    session.flush()


def events_of(session: Session, indicator_id: str, action: str | None = None) -> list[LifecycleEvent]:
    query = select(LifecycleEvent).where(LifecycleEvent.indicator_id == indicator_id)
    if action is not None:
        query = query.where(LifecycleEvent.action == action)
    return list(session.scalars(query.order_by(LifecycleEvent.at, LifecycleEvent.id)))


def events_between(session: Session, start: datetime, end: datetime) -> list[LifecycleEvent]:
    """Lifecycle events in ``[start, end)`` (the sharing report's lifecycle section)."""
    return list(
        session.scalars(
            select(LifecycleEvent)
            .where(LifecycleEvent.at >= start, LifecycleEvent.at < end)
            .order_by(LifecycleEvent.at, LifecycleEvent.id)
        )
    )


def versions_of(session: Session, collection_id: uuid.UUID, stix_id: str) -> list[tuple[str | None, bool]]:
    """``(modified, revoked)`` of every stored version, oldest first (the lifecycle view's history)."""
    rows = session.execute(
        select(ObjectVersion.modified, ObjectVersion.revoked)
        .where(ObjectVersion.collection_id == collection_id, ObjectVersion.stix_id == stix_id)
        .order_by(ObjectVersion.version)
    ).all()
    return [(modified, revoked) for modified, revoked in rows]


def feedback_for(session: Session, indicator_ids: Sequence[str]) -> dict[str, list[IndicatorFeedback]]:
    """Every verdict on each of ``indicator_ids`` (oldest first), in chunks of 500 ids."""
    found: dict[str, list[IndicatorFeedback]] = {}
    if session.scalar(select(IndicatorFeedback.id).limit(1)) is None:
        return found  # no feedback at all: the common case of a fresh store costs one query
    for start in range(0, len(indicator_ids), 500):
        chunk = indicator_ids[start : start + 500]
        rows = session.scalars(
            select(IndicatorFeedback)
            .where(one_of(session, IndicatorFeedback.indicator_id, chunk))
            .order_by(IndicatorFeedback.observed_at, IndicatorFeedback.id)
        )
        for row in rows:
            found.setdefault(row.indicator_id, []).append(row)
    return found


def our_latest_indicators(
    session: Session, identity: str, collection_ids: Sequence[uuid.UUID] | None
) -> list[dict[str, object]]:
    """The latest, unrevoked versions of the indicators ``identity`` published, in ``collection_ids`` (None: all)."""
    query = select(ObjectVersion.raw).where(
        ObjectVersion.stix_type == "indicator",
        ObjectVersion.is_latest == true(),
        ObjectVersion.revoked.is_(False),
        ObjectVersion.created_by_ref == identity,
    )
    if collection_ids is not None:
        query = query.where(ObjectVersion.collection_id.in_(collection_ids))
    return [orjson.loads(raw) for (raw,) in session.execute(query)]


def feedback_ids_after(session: Session, after: int) -> list[tuple[int, str]]:
    """``(row id, indicator id)`` of every verdict stored with a row id above ``after`` (the live match index's
    feedback clock), in id order."""
    rows = session.execute(
        select(IndicatorFeedback.id, IndicatorFeedback.indicator_id)
        .where(IndicatorFeedback.id > after)
        .order_by(IndicatorFeedback.id)
    ).all()
    return [(int(row_id), indicator_id) for row_id, indicator_id in rows]


def all_feedback(session: Session) -> dict[str, list[IndicatorFeedback]]:
    """Every verdict on every indicator (oldest first per indicator): a full build of the live match index."""
    found: dict[str, list[IndicatorFeedback]] = {}
    query = select(IndicatorFeedback).order_by(IndicatorFeedback.observed_at, IndicatorFeedback.id)
    for row in session.scalars(query.execution_options(yield_per=5_000)):
        found.setdefault(row.indicator_id, []).append(row)
    return found
