"""What a stream reads, and where it starts: every version (``match[version]=all``) the caller may see, after
its position, read as a TAXII poll of the collection through ``taxii.poll.serve_poll`` (TLP filter, grants,
read-ahead, replicas: the one read path of every poll).

The position is the TAXII ``next`` token of that read (``taxii.filters.encode_cursor``), so an event id is also
a valid ``next`` for ``GET …/objects/?match[version]=all`` and a ``next`` of such a read resumes a stream.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from indicator_exchange.auth.service import Caller, require_grant
from indicator_exchange.errors import BadRequest, Hidden
from indicator_exchange.read_routes import OBJECTS
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store import catalog
from indicator_exchange.store import objects as store
from indicator_exchange.taxii.filters import PageRequest, check_cursor, decode_cursor, encode_cursor
from indicator_exchange.taxii.poll import PollRequest

STREAM_FILTER = store.ReadFilter(version_keywords=("all",))


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """The collection a stream follows, as plain values (no ORM object outlives the setup's session); its API
    root's name is what a TAXII poll of it names (``PollRequest.api_root``)."""

    id: uuid.UUID
    default_tlp: int
    clock: int
    api_root: str


def open_stream(session: Session, caller: Caller, collection_key: str) -> StreamTarget:
    """The collection, if ``caller`` may read it: 404 as for a missing one without any grant, 403 without read."""
    found = catalog.resolve_collection(session, collection_key)
    require_grant(
        caller,
        found,
        hidden=Hidden(f"there is no collection {collection_key!r}", reason="no grant on this collection"),
        read=True,
    )
    root = catalog.get_api_root_by_id(session, found.api_root_id)
    if root is None:  # deleted between the two reads
        raise Hidden(f"there is no collection {collection_key!r}", reason="its API root is gone")
    return StreamTarget(found.id, found.default_tlp, found.last_date_added, root.name)


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


def poll_request(target: StreamTarget, *, after: int, limit: int) -> PollRequest:
    """The TAXII poll one batch of a stream is: all versions after ``after`` (0: from the beginning), at most
    ``limit``."""
    params = {"match[version]": ["all"], "limit": [str(limit)]}
    if after:
        params["next"] = [event_id(target, after)]
    return PollRequest(
        route=OBJECTS,
        api_root=target.api_root,
        collection_key=str(target.id),
        params=params,
        default_limit=limit,
        max_limit=limit,
    )
