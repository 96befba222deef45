"""API roots, collections and status resources."""

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.errors import BadRequest, NotFound
from indicator_exchange.store.models import ApiRoot, Collection, Grant, Status


def get_api_root(session: Session, name: str) -> ApiRoot | None:
    return session.execute(select(ApiRoot).where(ApiRoot.name == name)).scalar_one_or_none()


def get_api_root_by_id(session: Session, api_root_id: uuid.UUID) -> ApiRoot | None:
    return session.get(ApiRoot, api_root_id)


def list_api_roots(session: Session) -> Sequence[ApiRoot]:
    return session.execute(select(ApiRoot).order_by(ApiRoot.name)).scalars().all()


def add_api_root(session: Session, *, name: str, title: str, description: str | None = None) -> ApiRoot:
    root = ApiRoot(id=uuid.uuid4(), name=name, title=title, description=description)
    session.add(root)
    session.flush()
    return root


def get_collection(session: Session, api_root_id: uuid.UUID, collection_id: uuid.UUID) -> Collection | None:
    return session.execute(
        select(Collection).where(Collection.api_root_id == api_root_id, Collection.id == collection_id)
    ).scalar_one_or_none()


def find_collection(session: Session, api_root_id: uuid.UUID, key: str) -> Collection | None:
    """A collection by id or, failing that, by alias (TAXII 2.1 lets clients use either in URLs)."""
    try:
        found = get_collection(session, api_root_id, uuid.UUID(key))
    except ValueError:
        found = None
    if found is not None:
        return found
    return session.execute(
        select(Collection).where(Collection.api_root_id == api_root_id, Collection.alias == key)
    ).scalar_one_or_none()


def resolve_collection(session: Session, key: str) -> Collection:
    """A collection named by an operator or a client: its id, or its alias when that alias is unique across API
    roots. The one resolver behind every command and API that takes ``--collection``-like arguments."""
    key = key.strip()
    try:
        found = get_collection_by_id(session, uuid.UUID(key))
    except ValueError:
        found = None
    if found is not None:
        return found
    matches = session.execute(select(Collection).where(Collection.alias == key)).scalars().all()
    if not matches:
        raise NotFound(f"there is no collection {key!r} (neither an id nor an alias)")
    if len(matches) > 1:
        raise BadRequest(f"alias {key!r} names collections in several API roots; use the collection id")
    return matches[0]


def get_collection_by_id(session: Session, collection_id: uuid.UUID) -> Collection | None:
    return session.get(Collection, collection_id)


def list_collections(session: Session, api_root_id: uuid.UUID | None = None) -> Sequence[Collection]:
    query = select(Collection).order_by(Collection.created_at, Collection.id)
    if api_root_id is not None:
        query = query.where(Collection.api_root_id == api_root_id)
    return session.execute(query).scalars().all()


def add_collection(
    session: Session,
    *,
    api_root_id: uuid.UUID,
    title: str,
    collection_id: uuid.UUID | None = None,
    description: str | None = None,
    alias: str | None = None,
    default_tlp: int = 2,
) -> Collection:
    collection = Collection(
        id=collection_id or uuid.uuid4(),
        api_root_id=api_root_id,
        title=title,
        description=description,
        alias=alias,
        default_tlp=default_tlp,
        last_date_added=0,
    )
    session.add(collection)
    session.flush()
    return collection


def grants_for(session: Session, principal_id: uuid.UUID) -> dict[uuid.UUID, Grant]:
    rows = session.execute(select(Grant).where(Grant.principal_id == principal_id)).scalars()
    return {grant.collection_id: grant for grant in rows}


def get_status(session: Session, api_root_id: uuid.UUID, status_id: uuid.UUID) -> Status | None:
    return session.execute(
        select(Status).where(Status.api_root_id == api_root_id, Status.id == status_id)
    ).scalar_one_or_none()


def add_status(session: Session, status: Status) -> Status:
    session.add(status)
    session.flush()
    return status


@dataclass(frozen=True, slots=True)
class CollectionEntry:
    """What a TAXII read needs of a collection before its own statement (which reads the clock itself)."""

    id: uuid.UUID
    api_root_id: uuid.UUID
    alias: str | None
    default_tlp: int


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """Every API root (by name) and collection, as plain values a worker can keep between requests."""

    roots: dict[str, uuid.UUID]
    collections: dict[uuid.UUID, tuple[CollectionEntry, ...]]  # by API root

    def find_collection(self, api_root_id: uuid.UUID, key: str) -> CollectionEntry | None:
        """``find_collection`` over the snapshot: by id, or failing that by alias."""
        entries = self.collections.get(api_root_id, ())
        for entry in entries:
            if str(entry.id) == key:
                return entry
        for entry in entries:
            if entry.alias == key:
                return entry
        return None


def load_snapshot(session: Session) -> CatalogSnapshot:
    roots = {root.name: root.id for root in list_api_roots(session)}
    collections: dict[uuid.UUID, list[CollectionEntry]] = {}
    for c in list_collections(session):
        collections.setdefault(c.api_root_id, []).append(CollectionEntry(c.id, c.api_root_id, c.alias, c.default_tlp))
    return CatalogSnapshot(roots, {root: tuple(entries) for root, entries in collections.items()})


class CatalogCache:
    """One worker's catalog snapshot and the auth epoch it was read under (migration 9d4f2a7c1e38 makes the
    epoch move on every catalog change), so a poll resolves its API root and collection without a query."""

    def __init__(self) -> None:
        self._entry: tuple[int, CatalogSnapshot] | None = None
        self._lock = threading.Lock()

    def get(self, epoch: int) -> CatalogSnapshot | None:
        entry = self._entry
        return entry[1] if entry is not None and entry[0] == epoch else None

    def put(self, epoch: int, snapshot: CatalogSnapshot) -> None:
        with self._lock:
            if self._entry is None or self._entry[0] <= epoch:
                self._entry = (epoch, snapshot)
