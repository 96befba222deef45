"""Object versions in collections: the write path (per-collection clock) and the keyset read path."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, TypeVarTuple

from sqlalchemy import Select, and_, delete, false, func, null, or_, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from indicator_exchange.stix.markings import filed_tlp, tlp_of
from indicator_exchange.stix.objects import ObjectMeta, canonical_json
from indicator_exchange.store.bulk import insert_rows, one_of
from indicator_exchange.store.indicators import record_deletion
from indicator_exchange.store.models import Collection, ObjectVersion

Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class NewVersion:
    """One object version to store (the caller has validated it)."""

    stix_id: str
    stix_type: str
    spec_version: str
    version: int
    modified: str | None
    tlp: int | None
    created_by_ref: str | None
    revoked: bool
    raw: str


def version_of(obj: dict[str, Any], meta: ObjectMeta) -> NewVersion:
    """The store's record of an inspected STIX object: its indexed columns and canonical JSON (sorted keys,
    so an identical re-post compares equal). ``InvalidObject`` if the object cannot be stored (NUL, nesting)."""
    level = tlp_of(obj)
    return NewVersion(
        stix_id=meta.stix_id,
        stix_type=meta.stix_type,
        spec_version=meta.spec_version,
        version=meta.version,
        modified=meta.modified,
        tlp=None if level is None else int(level),
        created_by_ref=meta.created_by_ref,
        revoked=meta.revoked,
        raw=canonical_json(obj),
    )


@dataclass(slots=True)
class WriteOutcome:
    """Per input index: ``stored`` (new row), ``duplicate`` (identical row existed) or ``conflict``,
    with the ``date_added`` of stored rows in ``added`` (``None`` otherwise)."""

    results: list[str] = field(default_factory=list)
    added: list[int | None] = field(default_factory=list)
    stored: int = 0
    first_date_added: int | None = None
    last_date_added: int | None = None


@dataclass(frozen=True, slots=True)
class ReadFilter:
    """The TAXII filters of one read, already parsed; ``None`` means "no filter"."""

    ids: Sequence[str] | None = None
    types: Sequence[str] | None = None
    spec_versions: Sequence[str] | None = None
    # any of "first", "last", "all" and/or exact version timestamps (µs)
    version_keywords: Sequence[str] = ("last",)
    version_values: Sequence[int] = ()
    added_after: int | None = None


@dataclass(frozen=True, slots=True)
class Visibility:
    """What the reader may see: TLP levels up to ``clearance``; unmarked objects take ``default_tlp``."""

    clearance: int
    default_tlp: int


@dataclass(frozen=True, slots=True)
class ObjectRow:
    date_added: int
    stix_id: str
    version: int
    modified: str | None
    raw: str | None


def lock_collection(session: Session, collection_id: uuid.UUID) -> int:
    """Take the collection's write lock (held to commit) and return its clock.

    PostgreSQL: ``SELECT … FOR UPDATE`` serialises writers of one collection, so ``date_added`` order is
    commit order. SQLite: the transaction already holds the database write lock (``BEGIN IMMEDIATE``).
    """
    clock = session.execute(
        select(Collection.last_date_added).where(Collection.id == collection_id).with_for_update()
    ).scalar_one()
    return int(clock)


def write_versions(
    session: Session,
    collection_id: uuid.UUID,
    versions: Sequence[NewVersion],
    *,
    now_us: int,
    added_by: uuid.UUID | None,
) -> WriteOutcome:
    """Store new versions in a collection the caller has locked (``lock_collection``).

    An identical ``(id, version)`` already stored is a ``duplicate`` (idempotent success); the same key with
    different content is a ``conflict``. ``date_added`` continues the collection clock: strictly increasing,
    unique, and never behind ``now_us``.
    """
    outcome = WriteOutcome()
    if not versions:
        return outcome
    ids = sorted({v.stix_id for v in versions})
    existing: dict[tuple[str, int], str] = {}
    bounds: dict[str, tuple[int, int]] = {}
    stored_ids: set[str] = set()
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        rows = session.execute(
            select(ObjectVersion.stix_id, ObjectVersion.version, ObjectVersion.raw).where(
                ObjectVersion.collection_id == collection_id, one_of(session, ObjectVersion.stix_id, chunk)
            )
        )
        for stix_id, version, raw in rows:
            existing[(stix_id, version)] = raw
            stored_ids.add(stix_id)
            low, high = bounds.get(stix_id, (version, version))
            bounds[stix_id] = (min(low, version), max(high, version))

    accepted: list[NewVersion] = []
    for item in versions:
        key = (item.stix_id, item.version)
        if key in existing:
            outcome.results.append("duplicate" if existing[key] == item.raw else "conflict")
            outcome.added.append(None)
            continue
        existing[key] = item.raw
        accepted.append(item)
        outcome.results.append("stored")
        outcome.added.append(-1)  # filled in once the clock assigns it
        low, high = bounds.get(item.stix_id, (item.version, item.version))
        bounds[item.stix_id] = (min(low, item.version), max(high, item.version))
    if not accepted:
        return outcome

    # Only objects that already had versions can have flags to move; new ids cost no UPDATE.
    _clear_flags(session, collection_id, {item.stix_id for item in accepted} & stored_ids, bounds)

    clock = session.execute(select(Collection.last_date_added).where(Collection.id == collection_id)).scalar_one()
    date_added = max(int(clock) + 1, now_us)
    rows_to_insert = []
    for item in accepted:
        low, high = bounds[item.stix_id]
        rows_to_insert.append(
            {
                "collection_id": collection_id,
                "stix_id": item.stix_id,
                "stix_type": item.stix_type,
                "spec_version": item.spec_version,
                "version": item.version,
                "modified": item.modified,
                "date_added": date_added,
                "is_latest": item.version == high,
                "is_first": item.version == low,
                "tlp": filed_tlp(item.stix_type, item.stix_id, item.tlp),
                "created_by_ref": item.created_by_ref,
                "revoked": item.revoked,
                "added_by": added_by,
                "raw": item.raw,
            }
        )
        date_added += 1
    insert_rows(session, ObjectVersion.__table__, rows_to_insert)  # type: ignore[arg-type]
    session.execute(update(Collection).where(Collection.id == collection_id).values(last_date_added=date_added - 1))
    assigned = iter(row["date_added"] for row in rows_to_insert)
    outcome.added = [next(assigned) if slot is not None else None for slot in outcome.added]  # type: ignore[misc]
    outcome.stored = len(rows_to_insert)
    outcome.first_date_added = rows_to_insert[0]["date_added"]  # type: ignore[assignment]
    outcome.last_date_added = date_added - 1
    return outcome


def _clear_flags(session: Session, collection_id: uuid.UUID, ids: set[str], bounds: dict[str, tuple[int, int]]) -> None:
    """Drop ``is_latest``/``is_first`` from stored rows that the new versions supersede."""
    for stix_id in ids:
        low, high = bounds[stix_id]
        session.execute(
            update(ObjectVersion)
            .where(
                ObjectVersion.collection_id == collection_id,
                ObjectVersion.stix_id == stix_id,
                or_(
                    and_(ObjectVersion.is_latest == true(), ObjectVersion.version < high),
                    and_(ObjectVersion.is_first == true(), ObjectVersion.version > low),
                ),
            )
            .values(
                is_latest=ObjectVersion.version >= high,
                is_first=ObjectVersion.version <= low,
            )
        )


def _visible(visibility: Visibility) -> ColumnElement[bool]:
    marked_ok = ObjectVersion.tlp <= visibility.clearance
    if visibility.default_tlp <= visibility.clearance:
        return or_(ObjectVersion.tlp.is_(None), marked_ok)
    return marked_ok


def _filtered(
    query: Select[*Ts],
    collection_id: uuid.UUID,
    filters: ReadFilter,
    visibility: Visibility,
    after: int | None,
) -> Select[*Ts]:
    query = query.where(ObjectVersion.collection_id == collection_id, _visible(visibility))
    if filters.ids is not None:
        query = query.where(ObjectVersion.stix_id.in_(filters.ids))
    if filters.types is not None:
        query = query.where(ObjectVersion.stix_type.in_(filters.types))
    if filters.spec_versions is not None:
        query = query.where(ObjectVersion.spec_version.in_(filters.spec_versions))
    if "all" not in filters.version_keywords:
        wanted: list[ColumnElement[bool]] = []
        if "last" in filters.version_keywords:
            wanted.append(ObjectVersion.is_latest == true())
        if "first" in filters.version_keywords:
            wanted.append(ObjectVersion.is_first == true())
        if filters.version_values:
            wanted.append(ObjectVersion.version.in_(filters.version_values))
        query = query.where(or_(*wanted) if wanted else false())
    if after is not None:
        query = query.where(ObjectVersion.date_added > after)
    return query


def read_page(
    session: Session,
    collection_id: uuid.UUID,
    filters: ReadFilter,
    visibility: Visibility,
    *,
    after: int | None,
    limit: int,
    with_raw: bool = True,
) -> tuple[list[ObjectRow], bool]:
    """One keyset page ordered by ``date_added``, strictly after ``after``; returns (rows, more).

    Filtering (grants' TLP included) happens in SQL, so pages are full and positions never leak.
    """
    raw_column = ObjectVersion.raw if with_raw else null().label("raw")
    query = select(
        ObjectVersion.date_added,
        ObjectVersion.stix_id,
        ObjectVersion.version,
        ObjectVersion.modified,
        raw_column,
    )
    query = _filtered(query, collection_id, filters, visibility, after)
    query = query.order_by(ObjectVersion.date_added).limit(limit + 1)
    rows = [ObjectRow(*row) for row in session.execute(query)]
    return rows[:limit], len(rows) > limit


@dataclass(frozen=True, slots=True)
class JoinedPage:
    """One keyset page: the stored JSON of its objects, as bytes, ready to be joined into an envelope."""

    count: int
    first_added: int | None
    last_added: int | None
    objects: list[bytes]
    more: bool


@dataclass(frozen=True, slots=True)
class CheckedPage:
    """A page read in one statement with what it was read under: the collection's clock and the auth epoch
    (``None`` for both when the collection or the epoch row is gone)."""

    page: JoinedPage
    clock: int | None
    epoch: int | None


def read_page_joined(
    session: Session,
    collection_id: uuid.UUID,
    filters: ReadFilter,
    visibility: Visibility,
    *,
    after: int | None,
    limit: int,
) -> CheckedPage:
    """``read_page`` with the objects' stored JSON as bytes, plus the clock and epoch it ran under.

    On PostgreSQL this is the hot path of every poll: one hand-written statement on the raw psycopg
    connection (``read_page_pg``); SQLAlchemy's per-statement and per-row work cost more than the query.
    """
    if session.get_bind().dialect.name == "postgresql":
        return read_page_pg(session.connection().connection.dbapi_connection, collection_id, filters, visibility,
                            after=after, limit=limit)  # fmt: skip
    rows, more = read_page(session, collection_id, filters, visibility, after=after, limit=limit)
    clock = session.execute(select(Collection.last_date_added).where(Collection.id == collection_id)).scalar()
    return CheckedPage(
        JoinedPage(
            count=len(rows),
            first_added=rows[0].date_added if rows else None,
            last_added=rows[-1].date_added if rows else None,
            objects=[(row.raw or "").encode() for row in rows],
            more=more,
        ),
        clock=clock,
        epoch=None,
    )


def _conditions_pg(filters: ReadFilter, visibility: Visibility, after: int | None) -> tuple[str, list[object]]:
    """``_filtered`` as SQL text for ``read_page_pg``; ``tests/store/test_read_page_pg`` holds them equal."""
    where = ["collection_id = c.id"]
    params: list[object] = []
    if visibility.default_tlp <= visibility.clearance:
        where.append("(tlp IS NULL OR tlp <= %s)")
    else:
        where.append("tlp <= %s")
    params.append(visibility.clearance)
    for column, values in (("stix_id", filters.ids), ("stix_type", filters.types),
                           ("spec_version", filters.spec_versions)):  # fmt: skip
        if values is not None:
            where.append(f"{column} = ANY(%s)")
            params.append(list(values))
    if "all" not in filters.version_keywords:
        wanted = []
        if "last" in filters.version_keywords:
            wanted.append("is_latest")
        if "first" in filters.version_keywords:
            wanted.append("is_first")
        if filters.version_values:
            wanted.append("version = ANY(%s)")
            params.append(list(filters.version_values))
        where.append("(" + " OR ".join(wanted) + ")" if wanted else "false")
    if after is not None:
        where.append("date_added > %s")
        params.append(after)
    return " AND ".join(where), params


def read_page_pg(
    connection: Any,
    collection_id: uuid.UUID,
    filters: ReadFilter,
    visibility: Visibility,
    *,
    after: int | None,
    limit: int,
) -> CheckedPage:
    """One keyset page, the collection's clock and the auth epoch, from one statement (one snapshot).

    The clock is exactly what existed when the page was read (the audit trail needs it); the epoch lets a
    worker that resolved the caller and the collection from its caches check them in the same round trip.
    """
    where, params = _conditions_pg(filters, visibility, after)
    statement = (
        "SELECT c.last_date_added, e.epoch, p.date_added, convert_to(p.raw, 'UTF8') FROM collection c "
        "JOIN auth_epoch e ON e.id = 1 "
        "LEFT JOIN LATERAL (SELECT date_added, raw FROM object_version WHERE " + where + " ORDER BY date_added "
        "LIMIT %s) p ON true WHERE c.id = %s"
    )
    # Binary results with the JSON as bytea: psycopg's C loaders build the rows, and the stored JSON goes into
    # the response as it arrives (no decoding to str and encoding back).
    with connection.cursor(binary=True) as cursor:
        rows = cursor.execute(statement, [*params, limit + 1, collection_id]).fetchall()
    if not rows:
        return CheckedPage(JoinedPage(0, None, None, [], False), clock=None, epoch=None)
    clock, epoch = rows[0][0], rows[0][1]
    if rows[0][2] is None:
        return CheckedPage(JoinedPage(0, None, None, [], False), clock=clock, epoch=epoch)
    # One outer row: the nested loop yields the subquery's order, but SQL does not promise it. Sorting rows
    # that are already in order costs one pass.
    rows.sort(key=itemgetter(2))
    kept = rows[:limit]
    return CheckedPage(
        JoinedPage(
            count=len(kept),
            first_added=kept[0][2],
            last_added=kept[-1][2],
            objects=[row[3] for row in kept],
            more=len(rows) > limit,
        ),
        clock=clock,
        epoch=epoch,
    )


_CLOCK_AND_EPOCH = "SELECT c.last_date_added, e.epoch FROM collection c JOIN auth_epoch e ON e.id = 1 WHERE c.id = %s"


def clock_and_epoch_pg(connection: Any, collection_id: uuid.UUID) -> tuple[int | None, int | None]:
    """The collection's clock and the auth epoch now, in one small prepared statement (read-ahead checks a
    page read earlier against them: ``taxii.read_ahead``). ``(None, None)``: the collection is gone."""
    row = connection.execute(_CLOCK_AND_EPOCH, [collection_id], prepare=True).fetchone()
    return (None, None) if row is None else (row[0], row[1])


async def clock_and_epoch_async(connection: Any, collection_id: uuid.UUID) -> tuple[int | None, int | None]:
    """``clock_and_epoch_pg`` on an asyncio connection (``store.engine.LoopConnection``)."""
    cursor = await connection.execute(_CLOCK_AND_EPOCH, [collection_id], prepare=True)
    row = await cursor.fetchone()
    return (None, None) if row is None else (row[0], row[1])


def object_exists(session: Session, collection_id: uuid.UUID, stix_id: str, visibility: Visibility) -> bool:
    query = select(ObjectVersion.seq).where(
        ObjectVersion.collection_id == collection_id, ObjectVersion.stix_id == stix_id, _visible(visibility)
    )
    return session.execute(query.limit(1)).first() is not None


def delete_versions(
    session: Session, collection_id: uuid.UUID, stix_id: str, filters: ReadFilter, visibility: Visibility
) -> int:
    """Delete the matching versions of one object and repair the first/last flags of what remains."""
    query = select(
        ObjectVersion.seq, ObjectVersion.stix_id, ObjectVersion.version, ObjectVersion.modified, ObjectVersion.raw
    )
    targets = _filtered(
        query,
        collection_id,
        ReadFilter(
            ids=[stix_id],
            spec_versions=filters.spec_versions,
            version_keywords=filters.version_keywords,
            version_values=filters.version_values,
        ),
        visibility,
        None,
    )
    seqs = [row[0] for row in session.execute(targets)]
    if not seqs:
        return 0
    session.execute(delete(ObjectVersion).where(ObjectVersion.seq.in_(seqs)))
    # The clock moves on every change to the collection's contents, deletes too: whoever holds something read
    # under the old clock (a page read ahead, a matching index) sees that it changed. A gap in date_added is
    # harmless; the next object still gets a date_added above the clock.
    session.execute(
        update(Collection).where(Collection.id == collection_id).values(last_date_added=Collection.last_date_added + 1)
    )
    record_deletion(session, collection_id, stix_id)  # what went, at that clock: a delete leaves no row to read
    remaining = session.execute(
        select(func.min(ObjectVersion.version), func.max(ObjectVersion.version)).where(
            ObjectVersion.collection_id == collection_id, ObjectVersion.stix_id == stix_id
        )
    ).one()
    if remaining[0] is not None:
        session.execute(
            update(ObjectVersion)
            .where(ObjectVersion.collection_id == collection_id, ObjectVersion.stix_id == stix_id)
            .values(
                is_first=ObjectVersion.version == remaining[0],
                is_latest=ObjectVersion.version == remaining[1],
            )
        )
    return len(seqs)


def count_objects(session: Session, collection_id: uuid.UUID, visibility: Visibility) -> int:
    """Latest versions visible to the reader (dashboards and collection listings)."""
    query = select(func.count()).where(
        ObjectVersion.collection_id == collection_id,
        ObjectVersion.is_latest == true(),
        _visible(visibility),
    )
    return int(session.execute(query).scalar_one())
