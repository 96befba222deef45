"""Storing object versions: the per-collection clock that orders ``date_added``, the first/last flags, deletes."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, true, update
from sqlalchemy.orm import Session

from indicator_exchange.stix.markings import filed_tlp, tlp_of
from indicator_exchange.stix.objects import ObjectMeta, canonical_json
from indicator_exchange.store.bulk import insert_rows, one_of
from indicator_exchange.store.indicators import record_deletion
from indicator_exchange.store.models import Collection, ObjectVersion
from indicator_exchange.store.read_filter import ReadFilter, Visibility


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


def delete_versions(
    session: Session, collection_id: uuid.UUID, stix_id: str, filters: ReadFilter, visibility: Visibility
) -> int:
    """Delete the matching versions of one object and repair the first/last flags of what remains."""
    query = select(
        ObjectVersion.seq, ObjectVersion.stix_id, ObjectVersion.version, ObjectVersion.modified, ObjectVersion.raw
    )
    one = ReadFilter(
        ids=(stix_id,),
        spec_versions=filters.spec_versions,
        version_keywords=filters.version_keywords,
        version_values=filters.version_values,
    )
    targets = query.where(ObjectVersion.collection_id == collection_id, one.condition(visibility=visibility))
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
