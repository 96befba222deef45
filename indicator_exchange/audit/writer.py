"""Writing audit rows for the middleware: spooled while the database is away, failed sign-ins aggregated.

A request answered while PostgreSQL restarts cannot have its audit row written either. The row is kept in a
bounded in-memory spool (``IX_AUDIT_SPOOL_SIZE``) and written, with its original time, by the next audit
write that succeeds; past the bound rows are dropped, and both are counted (``metrics``). A worker that is
killed while rows wait loses them: the spool is memory, not a journal. A row whose commit PostgreSQL made
but could not acknowledge (stopped in between) is spooled too; its ``record_id`` is found on the retry and it
is not written twice.

Rows that need not be written before anything else happens (a stream's per-batch rows: the batch has been sent
already) are ``enqueue``d instead: the writer's thread writes what is queued many rows to a transaction, so a
commit delivered to hundreds of streams costs a few audit transactions, not one each, and no stream waits for
its row. Past ``spool_size`` queued rows ``enqueue`` refuses and the caller writes the row itself.

Repeated failed authentications (wrong secrets, throttled attempts) from one address for one key id are
one burst: its first attempt is written at once, the repeats as one row per ``BURST_SECONDS`` carrying
their count in ``object_count`` and a line in ``detail`` — a password-spraying client no longer costs a row
(and a write) per attempt.
"""

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange import metrics
from indicator_exchange.audit.service import AuditRecord, record
from indicator_exchange.auth.service import CallerCache
from indicator_exchange.store.audit import stored_record_ids
from indicator_exchange.store.engine import database_unavailable, session_scope

log = logging.getLogger(__name__)

BURST_SECONDS = 60.0
# At most this many bursts are followed at once; past it they are written out early, not forgotten.
MAX_BURSTS = 10_000
_DRAIN_BATCH = 500


@dataclass(slots=True)
class _Burst:
    first: AuditRecord  # the attempt written at once; repeats are summarised after it
    started: float  # monotonic time the current summary period began
    last_seen: float
    repeats: int = 0
    repeat_first_at: datetime | None = None
    repeat_last_at: datetime | None = None


class AuditWriter:
    """One per worker; ``write`` runs in the thread pool (it blocks on the database)."""

    def __init__(self, sessions: sessionmaker[Session], *, spool_size: int, callers: CallerCache | None = None) -> None:
        self.sessions = sessions
        self.spool_size = spool_size
        self.callers = callers
        self._spool: deque[AuditRecord] = deque()
        self._spool_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._bursts: dict[tuple[str | None, str | None, int], _Burst] = {}
        self._burst_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queued: deque[AuditRecord] = deque()
        self._queued_lock = threading.Lock()
        self._wake = threading.Event()

    @property
    def spooled(self) -> int:
        return len(self._spool)

    def write(self, entry: AuditRecord) -> None:
        """Write ``entry`` (or absorb it into a burst), then whatever the spool holds."""
        if entry.auth_failed and self._absorbed(entry):
            self.flush_bursts()
            return
        if self._write_one(entry):
            self.drain()
        self.flush_bursts()

    def enqueue(self, entry: AuditRecord) -> bool:
        """Queue ``entry`` for the writer's thread (any thread, the event loop too: no database work here);
        ``False`` when the queue is full or the thread is not running (then ``write`` it)."""
        with self._queued_lock:
            if self._thread is None or len(self._queued) >= self.spool_size:
                return False
            self._queued.append(entry)
        self._wake.set()
        return True

    @property
    def queued(self) -> int:
        return len(self._queued)

    def write_queued(self) -> None:
        """Write the queued rows, up to ``_DRAIN_BATCH`` per transaction; rows that meet an outage are spooled."""
        while True:
            batch = _take(self._queued, self._queued_lock)
            if not batch:
                return
            exc = self._write_batch(batch)
            if exc is not None:
                if database_unavailable(exc):
                    metrics.AUDIT_WRITE_FAILED.inc()
                    for entry in batch:
                        self._keep(entry)
                    return
                for entry in batch:  # one refused row must not take the others with it
                    self._write_one(entry)
                continue
            for entry in batch:
                self._mark_used(entry)

    def _write_batch(self, batch: list[AuditRecord]) -> Exception | None:
        """Write ``batch`` in one transaction; what stopped it, or None."""
        try:
            with session_scope(self.sessions) as session:
                _record_once(session, batch)
        except Exception as exc:
            return exc
        return None

    def _mark_used(self, entry: AuditRecord) -> None:
        if entry.key_touched and entry.key_id is not None and self.callers is not None:
            self.callers.mark_used(entry.key_id, entry.at)

    def _write_one(self, entry: AuditRecord) -> bool:
        try:
            with session_scope(self.sessions) as session:
                _record_once(session, [entry])
        except Exception as exc:
            metrics.AUDIT_WRITE_FAILED.inc()
            if database_unavailable(exc):
                self._keep(entry)
                return False
            # The response is already out; an unaudited request must at least be loud in the logs.
            log.exception(
                "could not write the audit row of %s %s (status %s)", entry.method, entry.path, entry.status_code
            )
            return False
        self._mark_used(entry)
        return True

    def _keep(self, entry: AuditRecord) -> None:
        with self._spool_lock:
            if len(self._spool) >= self.spool_size:
                metrics.AUDIT_DROPPED.inc()
                log.error(
                    "audit spool full (%s rows): the row of %s %s at %s is lost",
                    self.spool_size,
                    entry.method,
                    entry.path,
                    entry.at,
                )
                return
            entry.spooled = True
            self._spool.append(entry)
            metrics.AUDIT_SPOOLED.inc()
            metrics.AUDIT_SPOOL_SIZE.inc()
        log.warning("database unavailable: the audit row of %s %s waits in memory", entry.method, entry.path)

    def drain(self) -> None:
        """Write spooled rows, oldest first, in batches; stop (keeping the rest) at the first failure."""
        if not self._spool or not self._drain_lock.acquire(blocking=False):
            return
        try:
            while True:
                batch = _take(self._spool, self._spool_lock)
                if not batch:
                    return
                exc = self._write_batch(batch)
                if exc is not None:
                    if database_unavailable(exc):
                        with self._spool_lock:
                            self._spool.extendleft(reversed(batch))
                        return
                    # One row the database refuses must not hold the others back for ever: one by one, the
                    # refused one logged (``_write_one``), any that meet an outage spooled again.
                    metrics.AUDIT_SPOOL_SIZE.dec(len(batch))
                    for entry in batch:
                        if self._write_one(entry):
                            metrics.AUDIT_SPOOL_WRITTEN.inc()
                    continue
                metrics.AUDIT_SPOOL_WRITTEN.inc(len(batch))
                metrics.AUDIT_SPOOL_SIZE.dec(len(batch))
        finally:
            self._drain_lock.release()

    def _absorbed(self, entry: AuditRecord) -> bool:
        """Whether ``entry`` repeats a burst already written (it is counted there, not written)."""
        key = (entry.client_addr, entry.key_id, entry.status_code)
        now = time.monotonic()
        with self._burst_lock:
            burst = self._bursts.get(key)
            if burst is None or now - burst.last_seen > BURST_SECONDS:
                if len(self._bursts) >= MAX_BURSTS:
                    early = list(self._bursts.values())
                    self._bursts.clear()
                else:
                    early = []
                if burst is not None:
                    early.append(burst)
                self._bursts[key] = _Burst(first=entry, started=now, last_seen=now)
            else:
                burst.repeats += 1
                burst.last_seen = now
                burst.repeat_first_at = burst.repeat_first_at or entry.at
                burst.repeat_last_at = entry.at
                return True
        for ended in early:
            self._summarise(ended)
        return False

    def flush_bursts(self, *, everything: bool = False) -> None:
        """Write the summary row of each burst that went quiet or has been summarising for ``BURST_SECONDS``."""
        now = time.monotonic()
        due: list[_Burst] = []
        with self._burst_lock:
            for key, burst in list(self._bursts.items()):
                quiet = now - burst.last_seen > BURST_SECONDS
                if everything or quiet or (burst.repeats and now - burst.started >= BURST_SECONDS):
                    due.append(replace(burst))
                    if everything or quiet:
                        del self._bursts[key]
                    else:  # still going: a new summary period
                        burst.repeats, burst.started = 0, now
                        burst.repeat_first_at = burst.repeat_last_at = None
        for burst in due:
            self._summarise(burst)

    def _summarise(self, burst: _Burst) -> None:
        if not burst.repeats or burst.repeat_first_at is None or burst.repeat_last_at is None:
            return
        first = burst.first
        span = f"{_when(burst.repeat_first_at)} to {_when(burst.repeat_last_at)}"
        noun = "attempt" if burst.repeats == 1 else "attempts"
        summary = replace(
            first,
            at=burst.repeat_last_at,
            object_count=burst.repeats,
            detail=f"{burst.repeats} more failed {noun} like this one, {span}"
            + (f" (first: {first.detail})" if first.detail else ""),
            key_touched=False,
            auth_failed=False,
            record_id=uuid.uuid4(),
            spooled=False,
        )
        if self._write_one(summary):
            self.drain()

    def start(self, interval_seconds: float = 5.0) -> None:
        """Summarise quiet bursts and retry the spool every ``interval_seconds``, even with no requests coming."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(interval_seconds,), name="ix-audit", daemon=True)
            self._thread.start()

    def _run(self, interval_seconds: float) -> None:
        next_pass = time.monotonic() + interval_seconds
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_pass - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.write_queued()
                if time.monotonic() >= next_pass:
                    next_pass = time.monotonic() + interval_seconds
                    self.flush_bursts()
                    self.drain()
            except Exception:  # never let the thread die; the next pass retries
                log.exception("audit writer pass failed")

    def close(self) -> None:
        """At shutdown: write what is queued, summarise open bursts and try once more to write the spool."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.write_queued()
        self.flush_bursts(everything=True)
        self.drain()
        if self._spool:
            log.error("%s spooled audit rows could not be written before shutdown and are lost", len(self._spool))


def _record_once(session: Session, entries: list[AuditRecord]) -> None:
    """Record ``entries``, skipping spooled ones already stored: a commit PostgreSQL made but could not
    acknowledge (stopped in between) spooled its rows, and the retry must not write them twice."""
    retried = [(entry.at, entry.record_id) for entry in entries if entry.spooled]
    stored = stored_record_ids(session, retried)
    for entry in entries:
        if entry.record_id not in stored:
            record(session, entry)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _take(rows: deque[AuditRecord], lock: threading.Lock) -> list[AuditRecord]:
    """Up to ``_DRAIN_BATCH`` rows off the front of ``rows``."""
    with lock:
        return [rows.popleft() for _ in range(min(_DRAIN_BATCH, len(rows)))]
