"""Reading object versions: keyset pages ordered by ``date_added``, filtered (grants' TLP included) in SQL."""

import uuid
from dataclasses import dataclass
from typing import TypeVarTuple

from sqlalchemy import Select, func, null, select, true
from sqlalchemy.orm import Session

from indicator_exchange.store.models import ObjectVersion
from indicator_exchange.store.read_filter import ReadFilter, Visibility

Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class ObjectRow:
    date_added: int
    stix_id: str
    version: int
    modified: str | None
    raw: str | None


def filtered(
    query: Select[*Ts], collection_id: uuid.UUID, filters: ReadFilter, visibility: Visibility, after: int | None
) -> Select[*Ts]:
    """``query`` narrowed to the rows of ``collection_id`` that ``filters`` and ``visibility`` admit."""
    return query.where(
        ObjectVersion.collection_id == collection_id, filters.condition(after=after, visibility=visibility)
    )


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
    query = filtered(query, collection_id, filters, visibility, after)
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


def object_exists(session: Session, collection_id: uuid.UUID, stix_id: str, visibility: Visibility) -> bool:
    query = select(ObjectVersion.seq).where(
        ObjectVersion.collection_id == collection_id,
        ObjectVersion.stix_id == stix_id,
        ReadFilter(version_keywords=("all",)).condition(visibility=visibility),
    )
    return session.execute(query.limit(1)).first() is not None


def count_objects(session: Session, collection_id: uuid.UUID, visibility: Visibility) -> int:
    """Latest versions visible to the reader (dashboards and collection listings)."""
    query = select(func.count()).where(
        ObjectVersion.collection_id == collection_id,
        ObjectVersion.is_latest == true(),
        ReadFilter(version_keywords=("all",)).condition(visibility=visibility),
    )
    return int(session.execute(query).scalar_one())
