"""The in-process side of live delivery: collection clocks as notified, and the waiters they wake.

One ``Hub`` per worker. Notifications come from ``live.listener`` (PostgreSQL LISTEN, or the SQLite clock
poller) on its own thread; waiters are coroutines on the worker's event loop (streams, long polls) woken with
``call_soon_threadsafe``. A waiter never trusts the hub for content: it compares the clock it last *read*
with the clock the hub has *heard of*, and re-reads when the hub is ahead or when the listener lost its
connection (``generation`` moves: notifications may have been missed).
"""

import asyncio
import threading
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Literal

Wake = Literal["commit", "auth", "timeout", "closed"]
CommitCallback = Callable[[uuid.UUID, int], None]


@dataclass(frozen=True, slots=True)
class Mark:
    """What a waiter had seen when it last read: taken *before* the read, so nothing heard during it is lost."""

    generation: int
    auth: int


class _Waiter:
    __slots__ = ("event", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.loop.call_soon_threadsafe(self.event.set)


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clocks: dict[uuid.UUID, int] = {}
        self._waiters: dict[uuid.UUID | None, set[_Waiter]] = {}
        self._generation = 0  # moves when notifications may have been missed (listener reconnected)
        self._auth = 0  # moves on every change to principals, keys or grants
        self._callbacks: list[CommitCallback] = []
        self.closed = False
        self.notifications = 0
        self.streams = 0  # open streams of this worker (counted on its event loop)
        # Reads in flight on the event loop, joined by every stream that would make the same read (the same
        # collection, clearance, position and size: ``stream.events``); touched only on the loop.
        self.reads: dict[Hashable, asyncio.Future[object]] = {}

    def mark(self) -> Mark:
        with self._lock:
            return Mark(self._generation, self._auth)

    def clock(self, collection_id: uuid.UUID) -> int | None:
        """The newest clock heard of for the collection (``None``: nothing heard since start)."""
        with self._lock:
            return self._clocks.get(collection_id)

    def watched(self) -> list[uuid.UUID]:
        """Collections somebody waits on now (the SQLite poller reads only their clocks)."""
        with self._lock:
            return [key for key, waiters in self._waiters.items() if key is not None and waiters]

    def waiting(self) -> int:
        with self._lock:
            return sum(len(waiters) for waiters in self._waiters.values())

    def on_commit(self, callback: CommitCallback) -> None:
        """Call ``callback(collection_id, clock)`` on the listener's thread for every commit heard of (the
        matcher's refresher hooks here); it must return quickly."""
        self._callbacks.append(callback)

    def note_commit(self, collection_id: uuid.UUID, clock: int) -> None:
        """A commit moved the collection's clock to ``clock`` (called by the listener's thread)."""
        with self._lock:
            self.notifications += 1
            if clock <= self._clocks.get(collection_id, -1):
                return
            self._clocks[collection_id] = clock
            woken = list(self._waiters.get(collection_id, ()))
        for waiter in woken:
            waiter.wake()
        for callback in self._callbacks:
            callback(collection_id, clock)

    def note_auth(self) -> None:
        """Principals, keys or grants changed: every waiter re-checks its caller."""
        with self._lock:
            self._auth += 1
            woken = [w for waiters in self._waiters.values() for w in waiters]
        for waiter in woken:
            waiter.wake()

    def note_gap(self) -> None:
        """Notifications may have been missed (the listener reconnected): every waiter reads again."""
        with self._lock:
            self._generation += 1
            self._auth += 1
            woken = [w for waiters in self._waiters.values() for w in waiters]
        for waiter in woken:
            waiter.wake()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            woken = [w for waiters in self._waiters.values() for w in waiters]
        for waiter in woken:
            waiter.wake()

    def _state(self, collection_id: uuid.UUID, read_clock: int | None, mark: Mark) -> Wake | None:
        if self.closed:
            return "closed"
        if self._auth != mark.auth:
            return "auth"
        heard = self._clocks.get(collection_id)
        if self._generation != mark.generation or (heard is not None and (read_clock is None or heard > read_clock)):
            return "commit"
        return None

    async def wait(self, collection_id: uuid.UUID, *, read_clock: int | None, mark: Mark, timeout: float) -> Wake:
        """Until the collection's clock passes ``read_clock`` (the clock the caller's last read saw), the
        caller must re-check its credentials, or ``timeout`` seconds pass. No database work."""
        waiter = _Waiter(asyncio.get_running_loop())
        with self._lock:
            state = self._state(collection_id, read_clock, mark)
            if state is not None:
                return state
            self._waiters.setdefault(collection_id, set()).add(waiter)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return "timeout"
                try:
                    await asyncio.wait_for(waiter.event.wait(), remaining)
                except TimeoutError:
                    return "timeout"
                waiter.event.clear()
                with self._lock:
                    state = self._state(collection_id, read_clock, mark)
                if state is not None:
                    return state
        finally:
            with self._lock:
                waiters = self._waiters.get(collection_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[collection_id]
