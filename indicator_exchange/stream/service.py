"""The reads live delivery makes, through the normal keyset read path (``store.objects.read_page_joined``).

A stream reads every version (``match[version]=all``) visible to the caller, after its position; its position
is the TAXII ``next`` token of that read (``taxii.filters.encode_cursor``), so an event id is also a valid
``next`` for ``GET …/objects/?match[version]=all`` and a ``next`` of such a read resumes a stream.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from indicator_exchange.auth.service import Caller, require_grant, visibility_for
from indicator_exchange.errors import BadRequest, Hidden
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store import catalog
from indicator_exchange.store import objects as store
from indicator_exchange.store.models import Collection
from indicator_exchange.taxii.filters import PageRequest, check_cursor, decode_cursor, encode_cursor

STREAM_FILTER = store.ReadFilter(version_keywords=("all",))


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """The collection a stream follows, as plain values (no ORM object outlives the setup's session)."""

    id: uuid.UUID
    default_tlp: int
    clock: int


@dataclass(frozen=True, slots=True)
class Batch:
    objects: list[bytes]
    first_added: int | None
    last_added: int | None
    more: bool
    clock: int | None  # the collection's clock the read ran under; ``None``: the collection is gone


def open_stream(session: Session, caller: Caller, collection_key: str) -> StreamTarget:
    """The collection, if ``caller`` may read it: 404 as for a missing one without any grant, 403 without read."""
    found = catalog.resolve_collection(session, collection_key)
    require_grant(
        caller,
        found,
        hidden=Hidden(f"there is no collection {collection_key!r}", reason="no grant on this collection"),
        read=True,
    )
    return StreamTarget(found.id, found.default_tlp, found.last_date_added)


def may_read(caller: Caller, target: StreamTarget) -> bool:
    return caller.access(target.id).can_read


def start_position(target: StreamTarget, *, last_event_id: str | None, added_after: str | None) -> int | None:
    """Where a stream starts: after the ``Last-Event-ID`` (an event id, or a ``next`` token of an all-versions
    read of this collection), else after ``added_after``, else from the beginning. 400 on anything else."""
    if last_event_id:
        cursor = decode_cursor(last_event_id.strip())
        check_cursor(PageRequest(STREAM_FILTER, cursor.position, cursor), target.id, STREAM_FILTER)
        return cursor.position
    if added_after:
        try:
            return parse_timestamp_us(added_after, name="added_after")
        except InvalidObject as exc:
            raise BadRequest(str(exc)) from None
    return None


def event_id(target: StreamTarget, position: int) -> str:
    return encode_cursor(target.id, STREAM_FILTER, position)


def read_batch(session: Session, caller: Caller, target: StreamTarget, *, after: int | None, limit: int) -> Batch:
    """The next objects after ``after`` the caller may see, with the clock read in the same snapshot."""
    visibility = visibility_for(caller, _entry(target))
    checked = store.read_page_joined(session, target.id, STREAM_FILTER, visibility, after=after, limit=limit)
    page = checked.page
    return Batch(page.objects, page.first_added, page.last_added, page.more, checked.clock)


def _entry(target: StreamTarget) -> catalog.CollectionEntry:
    return catalog.CollectionEntry(target.id, uuid.UUID(int=0), None, target.default_tlp)


def collection_exists(session: Session, collection_id: uuid.UUID) -> bool:
    return session.get(Collection, collection_id) is not None
