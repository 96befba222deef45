"""The audit trail: append rows, list them, and the lookups that re-evaluate reads (``deliveries_of``).

Append-only: nothing here updates or deletes an ``audit_event`` row.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.store.bulk import insert_one
from indicator_exchange.store.models import AuditEvent, Collection, ObjectVersion


def add_event(session: Session, **values: object) -> None:
    """Append one row (``AuditEvent`` columns). Every request writes one, so it skips the ORM's unit of work
    (``bulk.insert_one``)."""
    insert_one(session, AuditEvent.__table__, values)  # type: ignore[arg-type]


def stored_record_ids(session: Session, rows: Sequence[tuple[datetime, uuid.UUID]]) -> set[uuid.UUID]:
    """Which of ``rows`` (time, record id) are stored already; looked up through the index on ``at``."""
    if not rows:
        return set()
    query = select(AuditEvent.record_id).where(
        AuditEvent.at.in_({at for at, _ in rows}), AuditEvent.record_id.in_({record_id for _, record_id in rows})
    )
    return {record_id for record_id in session.execute(query).scalars() if record_id is not None}


def list_events(
    session: Session,
    *,
    principal_id: uuid.UUID | None = None,
    collection_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> Sequence[AuditEvent]:
    """Events newest first; ``before_id`` pages backwards from an earlier answer's last id."""
    query = select(AuditEvent)
    if principal_id is not None:
        query = query.where(AuditEvent.principal_id == principal_id)
    if collection_id is not None:
        query = query.where(AuditEvent.collection_id == collection_id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return session.execute(query.order_by(AuditEvent.id.desc()).limit(limit)).scalars().all()


def reads_covering(
    session: Session, *, principal_id: uuid.UUID, collection_id: uuid.UUID, low: int, high: int
) -> Sequence[AuditEvent]:
    """Successful reads by a principal in a collection whose served ``date_added`` range meets ``[low, high]``."""
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.principal_id == principal_id,
            AuditEvent.collection_id == collection_id,
            AuditEvent.method == "GET",
            AuditEvent.status_code >= 200,
            AuditEvent.status_code < 300,
            AuditEvent.date_added_last >= low,
            AuditEvent.date_added_first <= high,
        )
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    return session.execute(query).scalars().all()


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One stored version of an object, with what visibility and version filters need."""

    collection_id: uuid.UUID
    stix_type: str
    spec_version: str
    version: int
    modified: str | None
    date_added: int
    tlp: int | None
    default_tlp: int


def versions_of(session: Session, stix_id: str) -> list[StoredVersion]:
    """Every stored version of ``stix_id`` in every collection, by collection then ``date_added``."""
    query = (
        select(
            ObjectVersion.collection_id,
            ObjectVersion.stix_type,
            ObjectVersion.spec_version,
            ObjectVersion.version,
            ObjectVersion.modified,
            ObjectVersion.date_added,
            ObjectVersion.tlp,
            Collection.default_tlp,
        )
        .join(Collection, Collection.id == ObjectVersion.collection_id)
        .where(ObjectVersion.stix_id == stix_id)
        .order_by(ObjectVersion.collection_id, ObjectVersion.date_added)
    )
    return [StoredVersion(*row) for row in session.execute(query)]
