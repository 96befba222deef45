"""The audit-trail side of the compliance reports: who read what, when, and what was refused.

Kept apart from ``store.reports`` so the sections built on it switch off cleanly on a store whose schema has
no audit trail (``audit_available()``).
"""

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, null, select
from sqlalchemy.orm import Session, aliased

from indicator_exchange.store import models
from indicator_exchange.store.models import Collection, ObjectVersion


def _audit_model() -> Any:
    return getattr(models, "AuditEvent", None)


def audit_available() -> bool:
    """Whether this code base records an audit trail (the model exists)."""
    return _audit_model() is not None


_OPTIONAL = ("object_id", "clearance", "default_tlp", "collection_clock", "outcome")


@dataclass(frozen=True, slots=True)
class AuditRow:
    at: datetime
    principal_id: uuid.UUID | None
    principal_name: str | None
    method: str
    path: str
    route: str | None
    collection_id: str | None
    filters: object
    status_code: int
    object_count: int | None
    date_added_first: int | None
    date_added_last: int | None
    object_id: str | None = None
    clearance: int | None = None  # the visibility the read ran under, when the trail records it
    default_tlp: int | None = None
    collection_clock: int | None = None  # the collection's last date_added when the read started
    outcome: str | None = None  # "denied" also for the 404s that hide a collection (``errors.Hidden``)

    @property
    def denied(self) -> bool:
        """Refused: 401, 403, 429, or a 404 that answered for a collection without a grant."""
        return self.status_code in (401, 403, 429) or self.outcome == "denied"

    @property
    def requests(self) -> int:
        """How many requests the row stands for: a row aggregating repeated failed authentications
        (``audit.writer``) carries their number in ``object_count``."""
        if self.status_code in (401, 429) and self.object_count:
            return self.object_count
        return 1


def _as_uuid(value: object) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def audit_rows(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    collection_ids: Sequence[uuid.UUID] | None,
    principal_id: uuid.UUID | None,
) -> Iterator[AuditRow]:
    """Audit events in ``[start, end)``, oldest first, streamed; empty when there is no audit trail."""
    event = _audit_model()
    if event is None:
        return
    optional = [getattr(event, name, None) for name in _OPTIONAL]
    query = select(
        event.at,
        event.principal_id,
        event.principal_name,
        event.method,
        event.path,
        event.route,
        event.collection_id,
        event.filters,
        event.status_code,
        event.object_count,
        event.date_added_first,
        event.date_added_last,
        *[null() if column is None else column for column in optional],
    ).where(event.at >= start, event.at < end)
    if collection_ids is not None:
        query = query.where(event.collection_id.in_(_column_values(event.collection_id, collection_ids)))
    if principal_id is not None:
        query = query.where(event.principal_id == principal_id)
    for row in session.execute(query.order_by(event.at).execution_options(yield_per=2000)):
        (at, who, name, method, path, route, collection_id, filters, status_code, count, first, last, *more) = row
        yield AuditRow(
            at=at,
            principal_id=_as_uuid(who),
            principal_name=name,
            method=str(method),
            path=str(path),
            route=route,
            collection_id=None if collection_id is None else str(collection_id),
            filters=filters,
            status_code=int(status_code),
            object_count=count,
            date_added_first=first,
            date_added_last=last,
            **dict(zip(_OPTIONAL, more, strict=True)),
        )


def _column_values(column: Any, ids: Sequence[uuid.UUID]) -> list[object]:
    python_type: object
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    return list(ids) if python_type is uuid.UUID else [str(i) for i in ids]


@dataclass(frozen=True, slots=True)
class ServedCandidate:
    """A version that a read of ``[first, last]`` may have returned, with when it stopped being latest/first."""

    date_added: int
    stix_id: str
    stix_type: str
    spec_version: str
    version: int
    tlp: int | None  # the object's own marking; None when unmarked
    default_tlp: int  # its collection's current default
    superseded_at: int | None  # date_added of the earliest-added newer version
    preceded_at: int | None  # date_added of the earliest-added older version


def served_candidates(session: Session, collection_id: uuid.UUID, *, low: int, high: int) -> list[ServedCandidate]:
    """Versions of one collection added in ``[low, high]``, in ``date_added`` order (reads re-evaluate them)."""
    newer = aliased(ObjectVersion)
    older = aliased(ObjectVersion)
    superseded = (
        select(func.min(newer.date_added))
        .where(
            newer.collection_id == ObjectVersion.collection_id,
            newer.stix_id == ObjectVersion.stix_id,
            newer.version > ObjectVersion.version,
        )
        .scalar_subquery()
    )
    preceded = (
        select(func.min(older.date_added))
        .where(
            older.collection_id == ObjectVersion.collection_id,
            older.stix_id == ObjectVersion.stix_id,
            older.version < ObjectVersion.version,
        )
        .scalar_subquery()
    )
    query = (
        select(
            ObjectVersion.date_added,
            ObjectVersion.stix_id,
            ObjectVersion.stix_type,
            ObjectVersion.spec_version,
            ObjectVersion.version,
            ObjectVersion.tlp,
            Collection.default_tlp,
            superseded,
            preceded,
        )
        .join(Collection, Collection.id == ObjectVersion.collection_id)
        .where(
            ObjectVersion.collection_id == collection_id,
            ObjectVersion.date_added >= low,
            ObjectVersion.date_added <= high,
        )
        .order_by(ObjectVersion.date_added)
    )
    return [ServedCandidate(*row) for row in session.execute(query)]
