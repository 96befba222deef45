"""The matcher's reads: the latest visible indicators (and relationships) of a collection, all of them or only
those changed in a range of ``date_added`` positions (deletions included, which a position alone cannot show).

Visibility is the TLP filter of every read: a version marked at or below the reader's clearance, or unmarked
in a collection whose default the reader may see. Revoked latest versions are left out.
"""

import uuid
from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement, and_, insert, select, true, union
from sqlalchemy.orm import Session

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


def changed_since(
    session: Session,
    collection: Collection,
    clearance: int,
    after: int,
    upto: int,
    types: Sequence[str] = MATCHED_TYPES,
) -> dict[str, str | None]:
    """Ids of ``types`` given a version, or deleted, at a position in ``(after, upto]``, each with the raw JSON
    of its latest, unrevoked, visible version now (``None``: it has none any more). One statement.

    Versions count whatever their visibility: a new version the reader may not see still hides the one before.
    """
    added = select(ObjectVersion.stix_id).where(
        ObjectVersion.collection_id == collection.id,
        ObjectVersion.date_added > after,
        ObjectVersion.date_added <= upto,
        ObjectVersion.stix_type.in_(types),
    )
    deleted = select(ObjectDeletion.stix_id).where(
        ObjectDeletion.collection_id == collection.id,
        ObjectDeletion.date_added > after,
        ObjectDeletion.date_added <= upto,
    )
    touched = union(added, deleted).subquery()
    latest = and_(
        ObjectVersion.collection_id == collection.id,
        ObjectVersion.stix_id == touched.c.stix_id,
        ObjectVersion.is_latest == true(),
        ObjectVersion.revoked.is_(False),
        _visible(collection.default_tlp, clearance),
    )
    rows = session.execute(select(touched.c.stix_id, ObjectVersion.raw).outerjoin(ObjectVersion, latest))
    return {stix_id: raw for stix_id, raw in rows}


def record_deletion(session: Session, collection_id: uuid.UUID, stix_id: str) -> None:
    """Note a delete at the collection's current clock (call after the delete moved it)."""
    clock = select(Collection.last_date_added).where(Collection.id == collection_id).scalar_subquery()
    session.execute(insert(ObjectDeletion).values(collection_id=collection_id, date_added=clock, stix_id=stix_id))
