"""Read-only queries behind the compliance reports: object versions, provenance, statuses, keys.

Everything here streams or aggregates in SQL so a report over a large store does not load it whole. The
report's scope (collections and a TLP clearance) is applied in SQL, as TAXII reads do: an object above the
clearance is never read, so it can neither be counted nor raise the report's marking.
"""

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVarTuple

from sqlalchemy import Select, case, func, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from indicator_exchange.store.models import (
    ApiKey,
    Collection,
    DetectionRecord,
    FeedSource,
    IngestRefusal,
    ObjectVersion,
    Principal,
    Status,
    SyncRejection,
)
from indicator_exchange.store.objects import ReadFilter, Visibility
from indicator_exchange.store.objects import _filtered as filtered  # same package: one definition of a read

_CHUNK = 500
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class Scope:
    """Which collections (``None``: all) and the most restrictive TLP level a report may summarise."""

    clearance: int
    collection_ids: tuple[uuid.UUID, ...] | None = None


@dataclass(frozen=True, slots=True)
class VersionRow:
    collection_id: uuid.UUID
    stix_id: str
    stix_type: str
    version: int
    date_added: int
    tlp: int  # effective: the object's own marking, else its collection's default
    created_by_ref: str | None
    revoked: bool
    added_by: uuid.UUID | None
    raw: str


@dataclass(frozen=True, slots=True)
class IdHistory:
    """Where one object's history starts, over every collection in scope."""

    first_added: int
    first_version: int
    first_revoked_added: int | None
    versions_before: frozenset[int] = frozenset()  # versions already stored before the window


def effective_tlp() -> ColumnElement[int]:
    return func.coalesce(ObjectVersion.tlp, Collection.default_tlp)


def _scoped(query: Select[*Ts], scope: Scope) -> Select[*Ts]:
    query = query.join(Collection, Collection.id == ObjectVersion.collection_id).where(
        effective_tlp() <= scope.clearance
    )
    if scope.collection_ids is not None:
        query = query.where(ObjectVersion.collection_id.in_(scope.collection_ids))
    return query


_VersionSelect = Select[uuid.UUID, str, str, int, int, int, str | None, bool, uuid.UUID | None, str]


def _version_query() -> _VersionSelect:
    return select(
        ObjectVersion.collection_id,
        ObjectVersion.stix_id,
        ObjectVersion.stix_type,
        ObjectVersion.version,
        ObjectVersion.date_added,
        effective_tlp(),
        ObjectVersion.created_by_ref,
        ObjectVersion.revoked,
        ObjectVersion.added_by,
        ObjectVersion.raw,
    )


def _stream(session: Session, query: _VersionSelect) -> Iterator[VersionRow]:
    for row in session.execute(query.execution_options(yield_per=1000)):
        yield VersionRow(*row)


def versions_added(
    session: Session, scope: Scope, *, start_us: int, end_us: int, types: Sequence[str]
) -> Iterator[VersionRow]:
    """Versions of ``types`` stored in ``[start_us, end_us)``, in ``date_added`` order, streamed."""
    query = _scoped(_version_query(), scope).where(
        ObjectVersion.stix_type.in_(types),
        ObjectVersion.date_added >= start_us,
        ObjectVersion.date_added < end_us,
    )
    return _stream(session, query.order_by(ObjectVersion.date_added, ObjectVersion.seq))


def latest_versions(
    session: Session, scope: Scope, *, stix_type: str, containing: str | None = None
) -> Iterator[VersionRow]:
    """The latest version of every object of ``stix_type`` (optionally whose JSON contains ``containing``)."""
    query = _scoped(_version_query(), scope).where(
        ObjectVersion.stix_type == stix_type, ObjectVersion.is_latest == true()
    )
    if containing is not None:
        query = query.where(ObjectVersion.raw.contains(containing, autoescape=True))
    return _stream(session, query.order_by(ObjectVersion.seq))


def versions_of(session: Session, scope: Scope, ids: Sequence[str]) -> Iterator[VersionRow]:
    """Every version of ``ids`` (any collection in scope), oldest stored first within each chunk of ids."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = _scoped(_version_query(), scope).where(ObjectVersion.stix_id.in_(chunk))
        yield from _stream(session, query.order_by(ObjectVersion.date_added))


def id_histories(session: Session, scope: Scope, ids: Sequence[str], *, before_us: int) -> dict[str, IdHistory]:
    """First ``date_added``, first version and first revocation of each of ``ids`` over the scope, and which
    of its versions were stored before ``before_us`` (a copy into another collection is not a new version)."""
    revoked_added = func.min(ObjectVersion.date_added).filter(ObjectVersion.revoked == true())
    found: dict[str, IdHistory] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = _scoped(
            select(
                ObjectVersion.stix_id,
                func.min(ObjectVersion.date_added),
                func.min(ObjectVersion.version),
                revoked_added,
            ),
            scope,
        ).where(ObjectVersion.stix_id.in_(chunk))
        earlier: dict[str, set[int]] = {}
        older = _scoped(select(ObjectVersion.stix_id, ObjectVersion.version), scope).where(
            ObjectVersion.stix_id.in_(chunk), ObjectVersion.date_added < before_us
        )
        for stix_id, version in session.execute(older.distinct()):
            earlier.setdefault(stix_id, set()).add(int(version))
        for stix_id, first_added, first_version, first_revoked in session.execute(
            query.group_by(ObjectVersion.stix_id)
        ):
            found[stix_id] = IdHistory(
                int(first_added),
                int(first_version),
                None if first_revoked is None else int(first_revoked),
                frozenset(earlier.get(stix_id, ())),
            )
    return found


def detectors_of(session: Session, scope: Scope, ids: Sequence[str]) -> dict[str, set[str]]:
    """The detectors that reported each indicator (ingest provenance)."""
    found: dict[str, set[str]] = {}
    for start in range(0, len(ids), _CHUNK):
        query = select(DetectionRecord.indicator_id, DetectionRecord.detector).distinct()
        query = query.where(DetectionRecord.indicator_id.in_(ids[start : start + _CHUNK]))
        if scope.collection_ids is not None:
            query = query.where(DetectionRecord.collection_id.in_(scope.collection_ids))
        for indicator_id, detector in session.execute(query):
            found.setdefault(indicator_id, set()).add(detector)
    return found


def version_counts(
    session: Session, scope: Scope, *, start_us: int, end_us: int, bucket_us: int, our_identity: str
) -> list[tuple[uuid.UUID | None, uuid.UUID, str, bool, int, int, int]]:
    """Versions stored in the window, counted per (added_by, collection, type, ours?, bucket, tlp).

    ``ours`` means ``created_by_ref`` is our identity; the bucket is ``(date_added - start) // bucket_us``.
    """
    ours = case((ObjectVersion.created_by_ref == our_identity, 1), else_=0)
    bucket = (ObjectVersion.date_added - start_us) // bucket_us
    tlp = effective_tlp()
    query = _scoped(
        select(
            ObjectVersion.added_by,
            ObjectVersion.collection_id,
            ObjectVersion.stix_type,
            ours,
            bucket,
            tlp,
            func.count(),
        ),
        scope,
    ).where(ObjectVersion.date_added >= start_us, ObjectVersion.date_added < end_us)
    query = query.group_by(
        ObjectVersion.added_by, ObjectVersion.collection_id, ObjectVersion.stix_type, ours, bucket, tlp
    )
    return [
        (added_by, collection_id, stix_type, bool(is_ours), int(slot), int(level), int(count))
        for added_by, collection_id, stix_type, is_ours, slot, level, count in session.execute(query)
    ]


def collections(session: Session, ids: Sequence[uuid.UUID] | None = None) -> list[Collection]:
    query = select(Collection).order_by(Collection.created_at, Collection.id)
    if ids is not None:
        query = query.where(Collection.id.in_(ids))
    return list(session.execute(query).scalars())


def principals(session: Session) -> list[Principal]:
    return list(session.execute(select(Principal).order_by(Principal.name)).scalars())


def feed_sources(session: Session) -> list[FeedSource]:
    return list(session.execute(select(FeedSource).order_by(FeedSource.name)).scalars())


def refusal_reasons(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    collection_ids: Sequence[uuid.UUID] | None,
    principal_id: uuid.UUID | None,
) -> list[tuple[str, int]]:
    """Ingest refusals in the window, counted per reason, most frequent first."""
    query = select(IngestRefusal.reason, func.count()).where(IngestRefusal.at >= start, IngestRefusal.at < end)
    query = _refusal_scope(query, collection_ids, principal_id).group_by(IngestRefusal.reason)
    return sorted(((str(r), int(n)) for r, n in session.execute(query)), key=lambda item: (-item[1], item[0]))


def recent_refusals(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    collection_ids: Sequence[uuid.UUID] | None,
    principal_id: uuid.UUID | None,
    limit: int,
) -> list[IngestRefusal]:
    query = select(IngestRefusal).where(IngestRefusal.at >= start, IngestRefusal.at < end)
    query = _refusal_scope(query, collection_ids, principal_id).order_by(
        IngestRefusal.at.desc(), IngestRefusal.id.desc()
    )
    return list(session.execute(query.limit(limit)).scalars())


def _refusal_scope(
    query: Select[*Ts], collection_ids: Sequence[uuid.UUID] | None, principal_id: uuid.UUID | None
) -> Select[*Ts]:
    if collection_ids is not None:
        query = query.where(IngestRefusal.collection_id.in_(collection_ids))
    if principal_id is not None:
        query = query.where(IngestRefusal.principal_id == principal_id)
    return query


def statuses(
    session: Session, *, start: datetime, end: datetime, collection_ids: Sequence[uuid.UUID] | None
) -> Iterator[Status]:
    """TAXII POST statuses created in the window (their failures are the objects rejected at ingest)."""
    query = select(Status).where(Status.created_at >= start, Status.created_at < end)
    if collection_ids is not None:
        query = query.where(Status.collection_id.in_(collection_ids))
    return iter(session.execute(query.order_by(Status.created_at).execution_options(yield_per=500)).scalars())


def sync_rejections(
    session: Session, *, start: datetime, end: datetime, collection_ids: Sequence[uuid.UUID] | None
) -> list[tuple[datetime, str, uuid.UUID, str | None, str]]:
    """Objects refused while pulling a partner feed: (at, source name, local collection, object id, reason)."""
    query = (
        select(
            SyncRejection.at,
            FeedSource.name,
            FeedSource.local_collection_id,
            SyncRejection.object_id,
            SyncRejection.reason,
        )
        .join(FeedSource, FeedSource.id == SyncRejection.source_id)
        .where(SyncRejection.at >= start, SyncRejection.at < end)
    )
    if collection_ids is not None:
        query = query.where(FeedSource.local_collection_id.in_(collection_ids))
    return [tuple(row) for row in session.execute(query.order_by(SyncRejection.at))]  # type: ignore[misc]


def keys_created(session: Session, *, start: datetime, end: datetime) -> list[tuple[ApiKey, Principal]]:
    query = select(ApiKey, Principal).join(Principal, Principal.id == ApiKey.principal_id)
    query = query.where(ApiKey.created_at >= start, ApiKey.created_at < end).order_by(ApiKey.created_at)
    return [(key, owner) for key, owner in session.execute(query)]


def keys_revoked(session: Session, *, start: datetime, end: datetime) -> list[tuple[ApiKey, Principal]]:
    query = select(ApiKey, Principal).join(Principal, Principal.id == ApiKey.principal_id)
    query = query.where(ApiKey.revoked_at >= start, ApiKey.revoked_at < end).order_by(ApiKey.revoked_at)
    return [(key, owner) for key, owner in session.execute(query)]


def count_versions(
    session: Session, collection_id: uuid.UUID, filters: ReadFilter, visibility: Visibility, *, after: int | None
) -> int:
    """How many versions a keyset read with these filters would return in all (exports' progress and totals)."""
    query = select(func.count()).select_from(ObjectVersion)
    return int(session.execute(filtered(query, collection_id, filters, visibility, after)).scalar_one())
