"""Read-ahead for feed polls: the next page of a poll is read while the client is still taking in this one.

A partner pulling a feed asks for page after page, each request waiting for the previous answer, and spends
as long receiving and parsing a 1,000-object page as the database spends reading it. So when a poll's page has
``more``, the worker starts reading the page after it, on a thread of its own, and the next request of the
same poll (``next``, or ``added_after`` at the page's last ``date_added``) finds it ready.

A page read ahead is served only if nothing it depends on has changed: the collection's clock (advanced by
every write, deletes included) and the auth epoch (raised by any change to principals, keys or grants) are
read again by the request, in one small statement, and must both equal what the page was read under; else
the request reads the page afresh. The caller is authenticated, rate-limited, authorised and audited as for
any other request. Memory: at most ``capacity`` pages per worker, each at most ``IX_MAX_PAGE_SIZE`` objects,
none kept longer than ``ttl_seconds``.
"""

import asyncio
import contextlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.store.pages import CheckedPage
from indicator_exchange.store.read_filter import ReadFilter, Visibility

# A page as read (with the clock and epoch it was read under) and its envelope, ready to send.
PageRead = tuple[CheckedPage, bytes]


@dataclass(frozen=True, slots=True)
class PollKey:
    """Everything a page's content depends on, besides the database: who reads, what, from where. ``filter``
    is the read's whole ``ReadFilter``, its visibility and page size included, so a filter added there is in
    the key without an edit here."""

    principal_id: uuid.UUID | None
    collection_id: uuid.UUID
    filter: ReadFilter
    after: int | None

    @property
    def limit(self) -> int:
        return self.filter.limit or 1


def poll_key(
    principal_id: uuid.UUID | None,
    collection_id: uuid.UUID,
    visibility: Visibility,
    filters: ReadFilter,
    *,
    after: int | None,
    limit: int,
) -> PollKey | None:
    """The key of a poll's page; ``None`` for reads not worth reading ahead (``match[id]``: one object)."""
    if filters.ids is not None:
        return None
    # added_after is folded into ``after`` (the stricter of it and the token): two polls that start at the
    # same position read the same page whatever added_after said.
    bound = replace(filters, visibility=visibility, limit=limit, added_after=None)
    return PollKey(principal_id=principal_id, collection_id=collection_id, filter=bound, after=after)


# A client that does not ask for the pages read for it (it pages by some other position than the last page's
# ``date_added``) would cost a wasted read per page. Each (principal, collection) is judged every TRIAL pages
# read ahead for it: if fewer than half were asked for, it gets none for ``pause_seconds``.
TRIAL = 8
_STREAMS = 1024  # (principal, collection) pairs remembered per worker


@dataclass(slots=True)
class _Stream:
    started: int = 0
    claimed: int = 0
    paused_until: float = 0.0


class ReadAhead:
    """The pages a worker has read ahead, by ``PollKey``; thread-safe (requests run in the thread pool)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        capacity: int,
        ttl_seconds: float = 10.0,
        pause_seconds: float = 60.0,
        run: Callable[[Callable[[Session], PageRead]], PageRead] | None = None,
    ) -> None:
        self.sessions = sessions  # read-ahead runs on its own connection, statement by statement
        # Where a page is read: by default a session of ``sessions``; with read replicas, one of them
        # (``ReplicaSet.run_read``). Either way ``accept`` checks it against the primary before it is served.
        self._run = run
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        self.pause_seconds = pause_seconds
        self._pages: OrderedDict[PollKey, tuple[float, Future[PageRead]]] = OrderedDict()
        self._streams: OrderedDict[tuple[uuid.UUID | None, uuid.UUID], _Stream] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        # Counters for tests and for the operator's curiosity; only ever incremented.
        self.started = 0
        self.skipped = 0
        self.paused = 0
        self.served = 0
        self.stale = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def start(self, key: PollKey, read: Callable[[Session], PageRead]) -> None:
        """Begin reading the page ``key``: ``read`` runs on the read-ahead thread with a session of its own. A
        no-op when read-ahead is off, the page is already being read, or every place is taken.

        A full worker skips the new page rather than evicting one: with more concurrent polls than places,
        evicting would throw away pages about to be asked for, and each poll would cost two reads a page.
        Places free up as pages are taken, or after ``ttl_seconds`` when a client never comes back.
        """
        if not self.enabled:
            return
        with self._lock:
            if key in self._pages:
                return
            now = time.monotonic()
            while self._pages and now - next(iter(self._pages.values()))[0] > self.ttl_seconds:
                self._pages.popitem(last=False)[1][1].cancel()
            if len(self._pages) >= self.capacity:
                self.skipped += 1
                return
            stream = self._stream(key)
            if now < stream.paused_until or not self._judge(stream, now):
                return
            try:
                future = self._executor.submit(self._read, read)
            except RuntimeError:  # shut down: the app is stopping
                return
            self._pages[key] = (now, future)
            stream.started += 1
            self.started += 1

    def _stream(self, key: PollKey) -> _Stream:
        name = (key.principal_id, key.collection_id)
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream()
            if len(self._streams) > _STREAMS:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(name)
        return stream

    def _judge(self, stream: _Stream, now: float) -> bool:
        """At the end of each trial: may this stream go on being read ahead?"""
        if stream.started < TRIAL:
            return True
        useful = stream.claimed * 2 >= stream.started
        stream.started = stream.claimed = 0
        if not useful:
            stream.paused_until = now + self.pause_seconds
            self.paused += 1
        return useful

    def _read(self, read: Callable[[Session], PageRead]) -> PageRead:
        if self._run is not None:
            return self._run(read)
        with self.sessions() as session:
            return read(session)

    def take(self, key: PollKey) -> PageRead | None:
        """The page read ahead for ``key``, waiting for it if it is being read; ``None`` if there is none, it
        has not started yet (the request is then quicker reading it itself), it failed or it is too old.
        The caller must still check it against the current clock and epoch (``accept``)."""
        future = self._claim(key)
        if future is None:
            return None
        try:
            return future.result()
        except Exception:  # the request reads the page itself and meets the error, if it lasts, there
            return None

    async def take_async(self, key: PollKey) -> PageRead | None:
        """``take`` for the event loop: waits for a page being read without holding up other requests."""
        future = self._claim(key)
        if future is None:
            return None
        try:
            return await asyncio.wrap_future(future)
        except Exception:
            return None

    def _claim(self, key: PollKey) -> Future[PageRead] | None:
        with self._lock:
            entry = self._pages.pop(key, None)
            if entry is not None:
                self._stream(key).claimed += 1
        if entry is None:
            return None
        begun, future = entry
        if future.cancel() or time.monotonic() - begun > self.ttl_seconds:
            return None
        return future

    def accept(self, page: CheckedPage, *, clock: int | None, epoch: int | None) -> bool:
        """Whether ``page`` may be served now: read under the collection's current clock and auth epoch."""
        fresh = page.clock is not None and page.clock == clock and page.epoch is not None and page.epoch == epoch
        with self._lock:
            if fresh:
                self.served += 1
            else:
                self.stale += 1
        return fresh

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the pages being read are read (tests; a poll never waits for pages it did not ask for)."""
        with self._lock:
            futures = [future for _, future in self._pages.values()]
        for future in futures:
            with contextlib.suppress(Exception):  # a failed read is the request's to meet, not ours
                future.result(timeout)

    def close(self) -> None:
        with self._lock:
            for _, future in self._pages.values():
                future.cancel()
            self._pages.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
