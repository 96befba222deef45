"""The matcher's reads: the latest visible indicators (and relationships) of a collection, all of them or only
those touched after a ``date_added`` position, and the deletions that a position alone cannot show.

Visibility is the TLP filter of every read: a version marked at or below the reader's clearance, or unmarked
in a collection whose default the reader may see. Revoked latest versions are left out.
"""

import uuid
from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement, insert, select, true, union
from sqlalchemy.orm import Session

from indicator_exchange.store.bulk import one_of
from indicator_exchange.store.models import Collection, ObjectDeletion, ObjectVersion

MATCHED_TYPES = ("indicator", "relationship")


def _visible(default_tlp: int, clearance: int) -> ColumnElement[bool]:
    level_ok = ObjectVersion.tlp <= clearance
    return level_ok if default_tlp > clearance else (ObjectVersion.tlp.is_(None) | level_ok)


def visible_latest(
    session: Session, collection: Collection, clearance: int, types: Sequence[str] = MATCHED_TYPES
) -> Iterator[str]:
    """The raw JSON of every latest, unrevoked, visible version of ``types`` in the collection."""
    rows = session.execute(
        select(ObjectVersion.raw).where(
            ObjectVersion.collection_id == collection.id,
            ObjectVersion.is_latest == true(),
            ObjectVersion.stix_type.in_(types),
            ObjectVersion.revoked.is_(False),
            _visible(collection.default_tlp, clearance),
        )
    )
    return (raw for (raw,) in rows)


def touched_since(
    session: Session, collection_id: uuid.UUID, after: int, upto: int, types: Sequence[str] = MATCHED_TYPES
) -> set[str]:
    """Ids of ``types`` given a version, or deleted, at a position in ``(after, upto]``.

    Versions whatever their visibility: a new version the reader may not see still hides the one before it.
    """
    added = select(ObjectVersion.stix_id).where(
        ObjectVersion.collection_id == collection_id,
        ObjectVersion.date_added > after,
        ObjectVersion.date_added <= upto,
        ObjectVersion.stix_type.in_(types),
    )
    deleted = select(ObjectDeletion.stix_id).where(
        ObjectDeletion.collection_id == collection_id,
        ObjectDeletion.date_added > after,
        ObjectDeletion.date_added <= upto,
    )
    return {stix_id for (stix_id,) in session.execute(union(added, deleted))}


def latest_of(session: Session, collection: Collection, clearance: int, ids: Sequence[str]) -> dict[str, str]:
    """id -> raw JSON of the latest, unrevoked, visible version, for those of ``ids`` that have one."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(ObjectVersion.stix_id, ObjectVersion.raw).where(
                ObjectVersion.collection_id == collection.id,
                one_of(session, ObjectVersion.stix_id, ids[start : start + 500]),
                ObjectVersion.is_latest == true(),
                ObjectVersion.revoked.is_(False),
                _visible(collection.default_tlp, clearance),
            )
        )
        found.update((stix_id, raw) for stix_id, raw in rows)
    return found


def record_deletion(session: Session, collection_id: uuid.UUID, stix_id: str) -> None:
    """Note a delete at the collection's current clock (call after the delete moved it)."""
    clock = select(Collection.last_date_added).where(Collection.id == collection_id).scalar_subquery()
    session.execute(insert(ObjectDeletion).values(collection_id=collection_id, date_added=clock, stix_id=stix_id))
