"""The one poll pipeline: every TAXII read of objects, an object, a manifest or an object's versions is served
by ``serve_poll``, through ordered strategies, each of which may decline (``None``) and leave the answer to
the next:

1. **read-ahead page** (objects route, on the event loop): the page read ahead for this very poll
   (``store.read_ahead``), checked against the collection's clock and the auth epoch in one small statement;
2. **cached catalog** (objects and object routes, stores with one-statement pages): the API root and
   collection from the worker's catalog snapshot, the caller as cached, all checked by the page's own
   statement — one round trip;
3. **authoritative read** (every route): the caller confirmed, the API root and collection resolved and
   authorised afresh, the page read; its errors are the answer (404, 403, 400).

A strategy declines whenever anything is not as cached or would be refused, so what a poll answers never
depends on which strategy served it: only how fast. The routes of ``taxii.routes`` (and ``taxii.direct``)
call ``serve_poll``; a long poll or a stream can call it in a loop with the same ``PollContext``.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from indicator_exchange.audit.context import RequestRecord, collection_seen
from indicator_exchange.auth.service import Caller, visibility_for
from indicator_exchange.errors import BadRequest
from indicator_exchange.read_routes import MANIFEST, OBJECT, OBJECTS, VERSIONS, ReadRoute
from indicator_exchange.services import AppServices
from indicator_exchange.store import catalog, principals
from indicator_exchange.store import objects as store
from indicator_exchange.store.catalog import CatalogSnapshot, CollectionEntry
from indicator_exchange.store.engine import database_unavailable
from indicator_exchange.store.models import Collection
from indicator_exchange.store.read_ahead import poll_key
from indicator_exchange.store.replicas import Mark, ReplicaSet, Standing, behind_or_not, mark_of, standing
from indicator_exchange.taxii import service
from indicator_exchange.taxii.filters import PageRequest, check_cursor, parse_page_request
from indicator_exchange.taxii.service import Page, StaleCache


@dataclass(frozen=True, slots=True)
class PollRequest:
    """What is asked: which read (``route``), of which collection (by id or alias), with which query
    parameters; ``max_limit`` is the page size this caller may get (clamped to what its quota has left)."""

    route: ReadRoute
    api_root: str
    collection_key: str
    params: Mapping[str, list[str]]
    default_limit: int
    max_limit: int
    object_id: str | None = None

    def page(self) -> PageRequest:
        """The parsed filters, page size and position; ``BadRequest`` when malformed."""
        return parse_page_request(
            self.params, default_limit=self.default_limit, max_limit=self.max_limit, allow=self.route.allow
        )


@dataclass(slots=True)
class PollContext:
    """Who asks, and with what: the worker's services, the caller (perhaps as cached, see ``record``), and how
    to confirm the caller against the current auth epoch when a strategy finds the cache stale."""

    services: AppServices
    caller: Caller
    record: RequestRecord  # auth_epoch: the epoch ``caller`` was taken under; caller_provisional
    confirm: Callable[[], Caller]
    # The client's last write position (``X-IX-LSN``): with read replicas, only one that has replayed it serves.
    read_position: str | None = None


@dataclass(frozen=True, slots=True)
class Served:
    """A poll's answer: the page, and the collection it was read from (as resolved or as cached)."""

    collection: Collection | CollectionEntry
    page: Page
    strategy: str  # "read-ahead", "cached", "replica" or "authoritative": for tests and metrics, never behaviour

    @property
    def more(self) -> bool:
        """The page was full: a reader that wants everything reads on at once (``position``) before waiting."""
        return self.page.more

    @property
    def position(self) -> int | None:
        """Where the next page starts: the last ``date_added`` served (``None``: the page was empty)."""
        return self.page.last_added

    @property
    def clock(self) -> int | None:
        """The collection's clock the page was read under (``None``: the collection is gone, or unknown)."""
        return self.page.clock


async def serve_poll(ctx: PollContext, poll: PollRequest) -> Served:
    """Serve one poll through the strategies in order (module docstring); raises what the authoritative read
    raises (``ExchangeError``s: the route's error handlers render them).

    Reads of objects parse their query first (a malformed one is a 400 whatever the collection); manifests and
    versions after the collection is authorised, as they always have."""
    page = poll.page() if poll.route in (OBJECTS, OBJECT) else None
    served = None if page is None else await _from_read_ahead(ctx, poll, page)
    if served is None:
        served = await run_in_threadpool(serve_poll_sync, ctx, poll, page)
    return served


def serve_poll_sync(ctx: PollContext, poll: PollRequest, page: PageRequest | None = None) -> Served:
    """Strategies 2 and 3, in the thread pool (on a read replica first, when there are replicas): the session is
    opened here (a generator dependency would cost two thread-pool hops a poll does not need). Its statements
    run without a transaction where the store allows it, so there is nothing to commit: it is only closed."""
    replicas = ctx.services.replicas
    if replicas is not None:
        served = _from_replica(ctx, poll, page, replicas)
        if served is not None:
            return served
    with ctx.services.sessions.statements() as session:
        return _serve_in(session, ctx, poll, page)


# --- on a read replica -----------------------------------------------------------------------------------


def _from_replica(ctx: PollContext, poll: PollRequest, page: PageRequest | None, replicas: ReplicaSet) -> Served | None:
    """The poll answered by a read replica exactly as the primary would answer it now; ``None``: the primary
    answers (no replica fit, the replica still behind when the wait ran out, or anything not as expected).

    Exact, not merely bounded by the lag: the primary's clock for the collection and its auth epoch are read
    first (one small statement, ``store.replicas.Mark``), and the replica answers only once it has replayed
    both. A delete, a newer version, a revoked key or grant or a changed default TLP committed through any
    instance before this request is never answered around; writes to other collections do not hold it up.
    The caller is confirmed on the primary under that epoch."""
    app = ctx.services
    replica = replicas.choose(ctx.read_position)
    if replica is None:
        replicas.on_read("primary")
        return None
    with app.sessions.statements() as primary:
        marked = _mark(primary, app, ctx, poll)
    if marked is None or not _caller_current(ctx, marked[0]):
        replicas.on_read("primary")
        return None
    mark, snapshot = marked
    deadline = replicas.deadline(replica)
    try:
        with replica.statements() as session:
            while True:
                answer = _replica_attempt(session, ctx, poll, page, mark, snapshot)
                if isinstance(answer, Served):
                    replicas.on_read("replica")
                    return answer
                if answer != "behind" or not _wait(session, mark, deadline):
                    break
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        replicas.failed(replica, exc)  # stopped mid-poll: this page (and the next) from the primary
    replicas.on_read("primary")
    return None


def _mark(
    primary: Session, app: AppServices, ctx: PollContext, poll: PollRequest
) -> tuple[Mark, CatalogSnapshot] | None:
    """The primary's mark for the polled collection, and a catalog snapshot taken under the mark's epoch."""
    epoch = ctx.record.auth_epoch
    snapshot = None if epoch is None else app.catalog.get(epoch)
    for _ in range(2):
        if snapshot is None:
            epoch = principals.auth_epoch(primary)
            snapshot = catalog.load_snapshot(primary)
            if epoch is None:
                return None
            app.catalog.put(epoch, snapshot)
        root_id = snapshot.roots.get(poll.api_root)
        found = None if root_id is None else snapshot.find_collection(root_id, poll.collection_key)
        mark = None if found is None else mark_of(primary, found.id)
        if mark is None:
            return None  # no such collection: the primary's authoritative read says so
        if mark.epoch == epoch:
            return mark, snapshot
        snapshot = None  # the catalog or the grants changed since the snapshot: take one under this epoch
    return None


def _caller_current(ctx: PollContext, mark: Mark) -> bool:
    """Whether the caller is as the primary has it at the mark's epoch (confirming it there if need be)."""
    if ctx.record.auth_epoch is not None and ctx.record.auth_epoch != mark.epoch:
        ctx.caller = ctx.confirm()  # reads the epoch again; a revoked key is refused here
    if ctx.record.auth_epoch not in (mark.epoch, None):  # None: no caller cache, authenticated afresh
        return False
    ctx.record.caller_provisional = False  # cached under the epoch the primary has now: current
    return True


def _replica_attempt(
    session: Session,
    ctx: PollContext,
    poll: PollRequest,
    page: PageRequest | None,
    mark: Mark,
    snapshot: CatalogSnapshot,
) -> Served | Standing:
    """One read on the replica: the answer, or how the replica stood (``behind``: wait and try again)."""
    app = ctx.services
    found = _readable(snapshot, ctx.caller, poll)
    if poll.route is OBJECTS and page is not None and found is not None and app.features.one_statement_pages:
        # The hot path: the page first, its own statement says under which clock and epoch it was read.
        try:
            answer = service.read_objects(
                session,
                collection=found,
                caller=ctx.caller,
                page=page,
                expected_epoch=mark.epoch,
                read_ahead=app.read_ahead,
                current=(mark.clock, mark.epoch),
            )
        except StaleCache:
            state = standing(session, mark)
            return "ahead" if state == "fresh" else state  # fresh: a bad cursor, the primary answers the 400
        state = behind_or_not((answer.clock, mark.epoch), mark)
        return Served(found, answer, "replica") if state == "fresh" else state
    # Everything else may answer "not found" or "not permitted": only from a replica known to be caught up.
    state = standing(session, mark)
    if state != "fresh":
        return state
    return _authoritative(session, ctx, poll, page)


def _wait(session: Session, mark: Mark, deadline: float) -> bool:
    """Until the replica has replayed the mark (``True``) or ``deadline`` passes."""
    while time.monotonic() < deadline:
        time.sleep(0.005)
        if standing(session, mark) != "behind":
            return True
    return False


def _serve_in(session: Session, ctx: PollContext, poll: PollRequest, page: PageRequest | None) -> Served:
    served = None if page is None else _from_catalog(session, ctx, poll, page)
    return served or _authoritative(session, ctx, poll, page)


# --- 1. read-ahead ---------------------------------------------------------------------------------------


async def _from_read_ahead(ctx: PollContext, poll: PollRequest, page: PageRequest) -> Served | None:
    """A page read ahead, checked and served on the event loop: no trip through the thread pool, one small
    statement (the collection's clock and the auth epoch, which must be those the page was read under and the
    epoch the caller was cached under)."""
    app, epoch = ctx.services, ctx.record.auth_epoch
    if poll.route is not OBJECTS or app.loop_connection is None or epoch is None or not app.read_ahead.enabled:
        return None
    found = _readable(app.catalog.get(epoch), ctx.caller, poll)
    if found is None:
        return None
    if page.cursor is not None:
        try:
            check_cursor(page, found.id, page.filters)
        except BadRequest:  # answered by the authoritative read, with the caller confirmed
            return None
    visibility = visibility_for(ctx.caller, found)
    key = poll_key(ctx.caller.principal_id, found.id, visibility, page.filters, after=page.after, limit=page.limit)
    ready = None if key is None else await app.read_ahead.take_async(key)
    if key is None or ready is None:
        return None
    now = await app.loop_connection.run(partial(store.clock_and_epoch_async, collection_id=found.id))
    checked, body = ready
    if now is None or now[1] != epoch or not app.read_ahead.accept(checked, clock=now[0], epoch=now[1]):
        return None
    if checked.page.more:
        service.read_next_page(app.read_ahead, key, found.id, page.filters, visibility, checked.page.last_added)
    return Served(found, service.page_of(checked, body), "read-ahead")


# --- 2. cached catalog -----------------------------------------------------------------------------------


def _from_catalog(session: Session, ctx: PollContext, poll: PollRequest, page: PageRequest) -> Served | None:
    """The API root and collection from the worker's catalog snapshot, and the snapshot and the caller checked
    by the page's own statement (``service.read_objects`` with ``expected_epoch``)."""
    app, epoch = ctx.services, ctx.record.auth_epoch
    if poll.route not in (OBJECTS, OBJECT) or epoch is None or not app.features.one_statement_pages:
        return None
    snapshot = app.catalog.get(epoch)
    if snapshot is None:
        current = principals.auth_epoch(session)
        snapshot = catalog.load_snapshot(session)
        if current is None:
            return None
        app.catalog.put(current, snapshot)
        if current != epoch:
            return None
    found = _readable(snapshot, ctx.caller, poll)
    if found is None:
        return None
    try:
        answer = service.read_objects(
            session,
            collection=found,
            caller=ctx.caller,
            page=page,
            object_id=poll.object_id,
            expected_epoch=epoch,
            read_ahead=app.read_ahead,
        )
    except StaleCache:
        return None
    return Served(found, answer, "cached")


def _readable(snapshot: CatalogSnapshot | None, caller: Caller, poll: PollRequest) -> CollectionEntry | None:
    """The collection as cached, if the caller may read it (else ``None``: the authoritative read says why)."""
    if snapshot is None:
        return None
    root_id = snapshot.roots.get(poll.api_root)
    found = None if root_id is None else snapshot.find_collection(root_id, poll.collection_key)
    return found if found is not None and caller.access(found.id).can_read else None


# --- 3. authoritative ------------------------------------------------------------------------------------


def _authoritative(session: Session, ctx: PollContext, poll: PollRequest, page: PageRequest | None) -> Served:
    caller = ctx.confirm() if ctx.record.caller_provisional else ctx.caller
    root = service.resolve_root(session, poll.api_root, caller)
    found = service.resolve_collection(session, root, poll.collection_key)
    ctx.record.collection = collection_seen(found)  # audited even when the caller is refused next
    service.authorise(caller, root, poll.collection_key, found, read=True)
    page = page or poll.page()
    if poll.route is MANIFEST:
        answer = service.read_manifest(session, collection=found, caller=caller, page=page)
    elif poll.route is VERSIONS and poll.object_id is not None:
        answer = service.read_versions(session, collection=found, caller=caller, page=page, object_id=poll.object_id)
    else:
        answer = service.read_objects(session, collection=found, caller=caller, page=page, object_id=poll.object_id)
    return Served(found, answer, "authoritative")
