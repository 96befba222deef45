"""Feed sources (partner TAXII collections we pull from or push to) and their rejections."""

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.store.models import FeedSource, SyncRejection


def get_source(session: Session, name: str) -> FeedSource | None:
    return session.execute(select(FeedSource).where(FeedSource.name == name)).scalar_one_or_none()


def get_source_by_id(session: Session, source_id: uuid.UUID) -> FeedSource | None:
    return session.get(FeedSource, source_id)


def list_sources(session: Session, *, enabled_only: bool = False) -> Sequence[FeedSource]:
    query = select(FeedSource).order_by(FeedSource.name)
    if enabled_only:
        query = query.where(FeedSource.enabled.is_(True))
    return session.execute(query).scalars().all()


def add_source(session: Session, source: FeedSource) -> FeedSource:
    session.add(source)
    session.flush()
    return source


def add_rejections(session: Session, source_id: uuid.UUID, rejections: list[tuple[str | None, str]]) -> None:
    session.add_all(SyncRejection(source_id=source_id, object_id=oid, reason=reason) for oid, reason in rejections)
    session.flush()


def recorded_rejections(session: Session, source_id: uuid.UUID, object_ids: Collection[str]) -> set[tuple[str, str]]:
    """The (object id, reason) pairs already recorded for this source among ``object_ids``."""
    found: set[tuple[str, str]] = set()
    ids = sorted(set(object_ids))
    for start in range(0, len(ids), 500):
        query = select(SyncRejection.object_id, SyncRejection.reason).where(
            SyncRejection.source_id == source_id, SyncRejection.object_id.in_(ids[start : start + 500])
        )
        found.update((oid, reason) for oid, reason in session.execute(query) if oid is not None)
    return found


def list_rejections(session: Session, source_id: uuid.UUID, limit: int = 100) -> Sequence[SyncRejection]:
    query = (
        select(SyncRejection).where(SyncRejection.source_id == source_id).order_by(SyncRejection.id.desc()).limit(limit)
    )
    return session.execute(query).scalars().all()
