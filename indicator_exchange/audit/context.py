"""The per-request record: what authentication, the routes and the error handlers learn about a request, kept
for the audit middleware in one typed object.

The audit middleware creates it (``open_record``) before the request runs and reads it back after; everything
else reaches it with ``record_of(request)``. This is the only module that touches the request's state, so a
renamed field is a type error, not a silently incomplete audit row. Plain values only: ORM objects are expired
by the request's rollback before the middleware reads them.
"""

import uuid
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.types import Scope

from indicator_exchange.auth.limits import Allowance
from indicator_exchange.auth.service import Caller
from indicator_exchange.errors import Unauthorized
from indicator_exchange.store.catalog import CollectionEntry
from indicator_exchange.store.models import Collection

_KEY = "indicator_exchange.request"


@dataclass(frozen=True, slots=True)
class CollectionSeen:
    """The collection a request resolved, as it was when the request read it."""

    id: uuid.UUID
    default_tlp: int
    clock: int  # its last date_added: what existed when the request started reading


@dataclass(frozen=True, slots=True)
class Served:
    """The ``date_added`` range and size of the page a read served."""

    count: int
    first_added: int | None
    last_added: int | None


@dataclass(slots=True)
class RequestRecord:
    """Facts about one request, filled in as it runs."""

    caller: Caller | None = None
    # The auth epoch the caller was authenticated under (None: the caller cache is off).
    auth_epoch: int | None = None
    # The caller came from the cache without reading the epoch: the page's statement must confirm it.
    caller_provisional: bool = False
    auth_failure: Unauthorized | None = None  # ``auth.service.InvalidKey`` also says whose key and why
    auth_throttled: bool = False
    allowance: Allowance | None = None
    collection: CollectionSeen | None = None
    served: Served | None = None
    # A POST's status: how many objects it accepted, into which collection.
    accepted: int | None = None
    accepted_into: uuid.UUID | None = None
    object_count: int | None = None
    # Objects the request charged to the key's daily quota itself as it went (a stream, batch by batch).
    quota_charged: int = 0
    outcome: str | None = None  # default: from the status code (``errors.Hidden`` is a 404 but a denial)
    detail: str | None = None

    @property
    def objects_remaining(self) -> int | None:
        """How many objects the caller's key may still receive or send today (``None``: no quota)."""
        return None if self.allowance is None else self.allowance.objects_remaining


REQUEST_ID_KEY = "indicator_exchange.request_id"  # set in the scope by ``observe.RequestObserver``


def request_id_in(scope: Scope) -> str | None:
    """The request id the server answered in ``X-Request-ID`` (for the audit row)."""
    found = scope.get(REQUEST_ID_KEY)
    return found if isinstance(found, str) else None


def open_record(scope: Scope) -> RequestRecord:
    """A fresh record for the request of ``scope`` (the audit middleware, before the request runs)."""
    record = RequestRecord()
    scope.setdefault("state", {})[_KEY] = record
    return record


def record_in(scope: Scope) -> RequestRecord:
    """The record of the request of ``scope``; one is made if the audit middleware did not (unaudited paths)."""
    found = scope.setdefault("state", {}).get(_KEY)
    if isinstance(found, RequestRecord):
        return found
    return open_record(scope)


def record_of(request: HTTPConnection) -> RequestRecord:
    return record_in(request.scope)


def note_collection(
    request: HTTPConnection, collection: Collection | CollectionEntry, clock: int | None = None
) -> None:
    """``clock``: the collection's clock as the request's own read saw it (default: the resolved row's)."""
    record_of(request).collection = collection_seen(collection, clock)


def collection_seen(collection: Collection | CollectionEntry, clock: int | None = None) -> CollectionSeen:
    """What the audit row keeps of a collection (plain values: the ORM row may be expired by then)."""
    if clock is None:
        clock = collection.last_date_added if isinstance(collection, Collection) else 0
    return CollectionSeen(id=collection.id, default_tlp=collection.default_tlp, clock=clock)


def note_served(request: HTTPConnection, count: int, first_added: int | None, last_added: int | None) -> None:
    """The page a read served."""
    record_of(request).served = Served(count, first_added, last_added)


def note_accepted(request: HTTPConnection, count: int, collection_id: uuid.UUID) -> None:
    """How many objects a write accepted, and where."""
    record = record_of(request)
    record.accepted, record.accepted_into = count, collection_id


def note_objects(request: HTTPConnection, count: int) -> None:
    """How many objects the request served, wrote or deleted (when no page or status says it)."""
    record_of(request).object_count = count


def note_detail(request: HTTPConnection, detail: str) -> None:
    """A one-line account of a configuration change (never a secret)."""
    record_of(request).detail = detail


def note_denied(request: HTTPConnection, reason: str) -> None:
    """A refusal the client sees as something else (``errors.Hidden``: a 404)."""
    record = record_of(request)
    record.outcome, record.detail = "denied", reason
