"""What routes tell the audit middleware about a request, through ``request.state``.

Plain values only: ORM objects on ``request.state`` are expired by the request's rollback before the
middleware reads them.
"""

import uuid
from dataclasses import dataclass

from fastapi import Request

from indicator_exchange.store.catalog import CollectionEntry
from indicator_exchange.store.models import Collection


@dataclass(frozen=True, slots=True)
class CollectionSeen:
    """The collection a request resolved, as it was when the request read it."""

    id: uuid.UUID
    default_tlp: int
    clock: int  # its last date_added: what existed when the request started reading


def note_collection(request: Request, collection: Collection | CollectionEntry, clock: int | None = None) -> None:
    """``clock``: the collection's clock as the request's own read saw it (default: the resolved row's)."""
    if clock is None:
        clock = collection.last_date_added if isinstance(collection, Collection) else 0
    request.state.collection = CollectionSeen(id=collection.id, default_tlp=collection.default_tlp, clock=clock)


def note_objects(request: Request, count: int) -> None:
    """How many objects the request served, wrote or deleted (when no page or status says it)."""
    request.state.object_count = count


def note_detail(request: Request, detail: str) -> None:
    """A one-line account of a configuration change (never a secret)."""
    request.state.audit_detail = detail
