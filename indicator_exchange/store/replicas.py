"""Read replicas (``IX_READ_REPLICA_URLS``): PostgreSQL streaming standbys that take reads off the primary
(polls, pages read ahead, exports, reports, match index loads, stream batches), each in rotation only while it
answers and lags at most ``IX_REPLICA_MAX_LAG_SECONDS``.

Why a replica is never stale, however far it lags: a read first takes a ``Mark`` on the primary (the collection's
clock and the auth epoch, or the WAL position) and a replica answers only once it has replayed it (``standing``;
waiting up to ``IX_REPLICA_WAIT_SECONDS``), else the primary does. Positions (``date_added``) are handed out
under the collection's writer lock in commit order (docs/design.md D12), so paging across replicas and the
primary neither skips nor repeats. Read-your-writes: a write answers its WAL position in ``X-IX-LSN``; a read
that sends it back is routed to a replica that has replayed it (``choose``).

A monitor thread per worker measures every replica each ``IX_REPLICA_CHECK_SECONDS`` (replay lag and replay
position, one statement); ``choose`` is then a lookup, round-robin over the healthy ones. A replica that fails
a read is taken out of rotation at once (``failed``) and comes back at the next good measurement.
"""

import itertools
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.errors import BadRequest
from indicator_exchange.store.engine import database_unavailable, make_engine, make_sessionmaker, read_only_engine

log = logging.getLogger(__name__)
T = TypeVar("T")

LSN_HEADER = "X-IX-LSN"
_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
# Replay lag: 0 when everything received is replayed (an idle primary sends nothing, and the last replay
# timestamp would age for ever); else the age of the last transaction replayed.
_MEASURE = text(
    "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
    "THEN 0 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END, "
    "pg_last_wal_replay_lsn()::text, pg_is_in_recovery()"
)
_REPLAYED = text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)")
_CLOCK_AND_EPOCH = text(
    "SELECT c.last_date_added, e.epoch FROM collection c JOIN auth_epoch e ON e.id = 1 WHERE c.id = :collection"
)
# How a replica stands against a ``Mark``: it may answer (``fresh``), not yet (``behind``), or it has replayed a
# change to principals, keys, grants or the catalog that the primary had not made when the mark was taken
# (``ahead``: fine for data, not for a caller confirmed under the mark's epoch).
Standing = Literal["behind", "fresh", "ahead"]


def parse_lsn(value: str | None) -> str | None:
    """A client's ``X-IX-LSN`` (``None`` when absent); 400 when it is not a PostgreSQL LSN."""
    if value is None or value == "":
        return None
    if not _LSN.match(value):
        raise BadRequest(f"{LSN_HEADER} must be a PostgreSQL WAL position such as 0/16B3748")
    return value.upper()


def lsn_value(lsn: str) -> int:
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def safe_name(url: str) -> str:
    """A replica's name for metrics and /readyz: host, port and database, never a password."""
    parsed = make_url(url)
    return f"{parsed.host or 'local'}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass(frozen=True, slots=True)
class Mark:
    """What a replica must have replayed to answer exactly as the primary would have when the mark was taken:
    one collection's clock and the auth epoch (polls, streams, exports: writes to other collections do not
    hold them up), or, for reads over many tables (reports, match index loads), the primary's WAL position."""

    collection_id: uuid.UUID | None = None
    clock: int = 0
    epoch: int = 0
    lsn: str | None = None


def mark_of(session: Session, collection_id: uuid.UUID | None = None) -> Mark | None:
    """The mark on the primary now; ``None`` when the collection does not exist (the primary answers)."""
    if collection_id is None:
        return Mark(lsn=primary_lsn(session))
    row = session.execute(_CLOCK_AND_EPOCH, {"collection": collection_id}).first()
    return None if row is None else Mark(collection_id, int(row[0]), int(row[1]))


def standing(session: Session, mark: Mark) -> Standing:
    """Where the database behind ``session`` (a replica) stands against ``mark``."""
    if mark.lsn is not None:
        return "fresh" if session.execute(_REPLAYED, {"lsn": mark.lsn}).scalar_one() else "behind"
    row = session.execute(_CLOCK_AND_EPOCH, {"collection": mark.collection_id}).first()
    return behind_or_not(None if row is None else (row[0], row[1]), mark)


def behind_or_not(now: tuple[int | None, int | None] | None, mark: Mark) -> Standing:
    """``standing`` from a clock and epoch already read (a poll's page statement reads both)."""
    clock, epoch = (None, None) if now is None else now
    if clock is None or epoch is None:
        return "behind"  # the collection (or the epoch row) has not been replayed yet
    if epoch > mark.epoch:
        return "ahead"
    return "fresh" if epoch == mark.epoch and clock >= mark.clock else "behind"


@dataclass(slots=True)
class Replica:
    name: str
    engine: Engine
    statements: sessionmaker[Session]
    reads: sessionmaker[Session]  # read-only transactions (exports and reports stream with server-side cursors)
    healthy: bool = False
    lag_seconds: float | None = None
    replayed: str | None = None  # replay position at the last measurement
    error: str | None = None
    checked_at: float = field(default=0.0)


class ReplicaSet:
    """The replicas of one worker, with their health; thread-safe."""

    def __init__(
        self,
        urls: tuple[str, ...],
        *,
        max_lag_seconds: float,
        wait_seconds: float,
        check_seconds: float,
        pool_size: int = 4,
    ) -> None:
        self.max_lag = max_lag_seconds
        self.wait_seconds = wait_seconds
        self.check_seconds = check_seconds
        self.replicas: list[Replica] = []
        for url in urls:
            engine = make_engine(url, pool_size=pool_size, max_overflow=pool_size)
            self.replicas.append(
                Replica(
                    safe_name(url),
                    engine,
                    make_sessionmaker(read_only_engine(engine, autocommit=True)),
                    make_sessionmaker(read_only_engine(engine)),
                )
            )
        self._turn = itertools.count()
        # Where measurements and routing decisions are reported (the app wires /metrics in; store/ stays free
        # of the web layer): (replica, lag or -1, in rotation), and "replica" or "primary" per read.
        self.on_measure: Callable[[str, float, bool], None] = lambda _name, _lag, _healthy: None
        self.on_read: Callable[[str], None] = lambda _target: None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.measure()
        self._thread = threading.Thread(target=self._run, name="replica-monitor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for replica in self.replicas:
            replica.engine.dispose()

    def _run(self) -> None:
        while not self._stop.wait(self.check_seconds):
            self.measure()

    def measure(self) -> None:
        """Measure every replica once: in rotation when it answers, is a standby and lags at most max lag."""
        for replica in self.replicas:
            try:
                with replica.engine.connect() as connection:
                    connection.execution_options(isolation_level="AUTOCOMMIT")
                    row = connection.execute(_MEASURE).one()
                lag, replayed, standby = float(row[0]), row[1], bool(row[2])
                healthy = standby and lag <= self.max_lag
                error = None if healthy else ("not a standby" if not standby else f"lags {lag:.1f} s")
            except Exception as exc:
                lag, replayed, healthy, error = -1.0, None, False, str(exc).splitlines()[0][:200]
                replica.engine.dispose()  # connections to a server that went away are dead
            with self._lock:
                if healthy != replica.healthy:
                    log.warning("replica %s %s", replica.name, "back in rotation" if healthy else f"out: {error}")
                replica.healthy, replica.lag_seconds, replica.replayed = healthy, lag, replayed
                replica.error, replica.checked_at = error, time.monotonic()
            self.on_measure(replica.name, lag, healthy)

    def failed(self, replica: Replica, exc: BaseException) -> None:
        """A read on ``replica`` met a connection failure: out of rotation until the next good measurement."""
        with self._lock:
            replica.healthy, replica.error = False, str(exc).splitlines()[0][:200]
        self.on_measure(replica.name, -1.0, False)
        replica.engine.dispose()

    def healthy(self) -> list[Replica]:
        with self._lock:
            return [r for r in self.replicas if r.healthy]

    def choose(self, lsn: str | None = None) -> Replica | None:
        """A replica for a read (round-robin over the healthy ones), one that has replayed ``lsn`` when given;
        ``None``: read from the primary."""
        candidates = self.healthy()
        if not candidates:
            return None
        start = next(self._turn)
        ordered = [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]
        if lsn is None:
            return ordered[0]
        wanted = lsn_value(lsn)
        for replica in ordered:  # the last measurement may already show it
            if replica.replayed is not None and lsn_value(replica.replayed) >= wanted:
                return replica
        deadline = time.monotonic() + self.wait_seconds
        while True:
            for replica in ordered:
                if self._has_replayed(replica, lsn):
                    return replica
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))

    def deadline(self, replica: Replica) -> float:
        """Until when (monotonic) a read may wait for ``replica`` to replay a mark: ``IX_REPLICA_WAIT_SECONDS``,
        or not at all when its last measured lag is longer (it cannot catch up in time: the primary answers
        at once instead of after the wait)."""
        lag = replica.lag_seconds
        budget = 0.0 if lag is not None and lag > self.wait_seconds else self.wait_seconds
        return time.monotonic() + budget

    def wait_for(self, replica: Replica, mark: Mark, *, deadline: float) -> Standing:
        """How ``replica`` stands against ``mark``, waiting (until ``deadline``, monotonic) while it is behind.
        A connection failure propagates: the caller marks the replica ``failed``."""
        with replica.statements() as session:
            while True:
                state = standing(session, mark)
                if state != "behind" or time.monotonic() >= deadline:
                    return state
                time.sleep(0.005)

    def fresh(
        self,
        primary: sessionmaker[Session],
        *,
        collection_id: uuid.UUID | None = None,
        lsn: str | None = None,
    ) -> Replica | None:
        """A replica that has replayed what the primary holds now (``Mark``: for ``collection_id``, else
        everything), waiting up to ``wait_seconds``; ``None``: read the primary. Reads that start here see
        nothing older than the primary would have shown at this call, so nothing served is stale."""
        replica = self.choose(lsn)
        if replica is None:
            self.on_read("primary")
            return None
        with primary() as session:
            mark = mark_of(session, collection_id)
        state: Standing = "behind"
        if mark is not None:
            try:
                state = self.wait_for(replica, mark, deadline=self.deadline(replica))
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                self.failed(replica, exc)
        self.on_read("primary" if state == "behind" else "replica")
        return None if state == "behind" else replica

    def run_read(self, primary: sessionmaker[Session], read: Callable[[Session], T]) -> T:
        """``read`` on a replica in rotation, else (none, or it fails to answer) on the primary. For reads
        whose result is checked against the primary before it is served (pages read ahead)."""
        replica = self.choose()
        if replica is not None:
            try:
                with replica.statements() as session:
                    return read(session)
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                self.failed(replica, exc)
        with primary() as session:
            return read(session)

    def _has_replayed(self, replica: Replica, lsn: str) -> bool:
        try:
            with replica.statements() as session:
                return bool(session.execute(_REPLAYED, {"lsn": lsn}).scalar_one())
        except Exception as exc:
            self.failed(replica, exc)
            return False

    def describe(self) -> list[dict[str, object]]:
        with self._lock:
            return [
                {"replica": r.name, "in_rotation": r.healthy, "lag_seconds": r.lag_seconds, "error": r.error}
                for r in self.replicas
            ]


def primary_lsn(session: Session) -> str:
    """The primary's WAL insert position now: at or after the end of every transaction committed before."""
    return str(session.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one())
