"""Engines and sessions for PostgreSQL (psycopg 3) and SQLite, built explicitly — never at import time."""

import asyncio
import functools
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    # psycopg is imported where it is used: a command on SQLite (and `--help`) need not load the driver.
    import psycopg

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    asynchronous_commit: bool = False,
    pooled: bool = False,
) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and explicit transactions (STYLE §11).

    ``asynchronous_commit`` (PostgreSQL): commits return before their WAL reaches disk. Only for bookkeeping
    written beside a request, never for the data itself: audit rows (written after the response is already
    sent) and rate counters. A database crash can lose the last fraction of a second of them; it cannot
    corrupt or reorder anything. It saves a disk flush per request. ``pooled`` (``url`` is a transaction-mode
    PgBouncer, which refuses session options in the startup packet): asynchronous commit is not asked for.
    """
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _make_sqlite_transactional(engine)
        return engine
    # psycopg 3 prepares a statement after 5 runs and PostgreSQL may then keep a generic plan made while a
    # table was small (a sequential scan), which made ingest slow down linearly as a collection grew. Plan
    # every statement for its own parameters instead (measured: flat 55 ms per 1,000 objects at 30,000).
    #
    # No pre-ping: it cost a round trip on every checkout, and a request checks out three connections (auth,
    # its own transaction, the audit row). A connection that died instead fails its first use, which
    # invalidates the whole pool and answers 503 with Retry-After (error_handlers).
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=False,
        connect_args={"prepare_threshold": None}
        | ({"options": "-c synchronous_commit=off"} if asynchronous_commit and not pooled else {}),
    )
    # Behind a pooler the startup option is refused: the statements that write bookkeeping ask for asynchronous
    # commit themselves, for their own transaction (``bulk.insert_one``), in the same round trip.
    return engine.execution_options(ix_asynchronous_commit=True) if asynchronous_commit and pooled else engine


@dataclass(frozen=True, slots=True)
class StoreFeatures:
    """What the store behind an engine can do, asked once (``features``) instead of dialect checks at call sites.

    ``statement_reads``: reads may run without BEGIN/COMMIT, one statement each (PostgreSQL autocommit).
    ``one_statement_pages``: a page, the collection's clock and the auth epoch come from one hand-written
    statement on the driver connection (``store.pages_pg``), so cached callers and catalogs can be checked in it.
    ``separate_bookkeeping``: audit rows and counters get their own pool (with asynchronous commit); SQLite
    has one writer, so they share the request engine.
    ``loop_connection``: an asyncio driver connection can serve statements on the event loop.
    """

    statement_reads: bool
    one_statement_pages: bool
    separate_bookkeeping: bool
    loop_connection: bool


def features(engine: Engine | Connection) -> StoreFeatures:
    """The ``StoreFeatures`` of ``engine``'s database (a session's bind may be a connection)."""
    return _features_of(engine.dialect.name)


@functools.cache
def _features_of(dialect: str) -> StoreFeatures:
    postgresql = dialect == "postgresql"
    return StoreFeatures(
        statement_reads=postgresql,
        one_statement_pages=postgresql,
        separate_bookkeeping=postgresql,
        loop_connection=postgresql,
    )


@dataclass(frozen=True, slots=True)
class PoolBudget:
    """How one worker's connections (``IX_DB_CONNECTIONS_PER_WORKER``) are shared out: the request pool and its
    overflow (request transactions, authentication, read-ahead, statistics), the bookkeeping pool (audit rows,
    rate counters; no overflow), the one connection of the event loop (``LoopConnection``) and the one that
    LISTENs for commits (``live.listener.PgListener``). The last two are sessions of their own: with a pooler
    they go to the server directly (``direct``)."""

    request_pool: int
    request_overflow: int
    bookkeeping_pool: int
    loop_connections: int = 1
    listen_connections: int = 1

    @classmethod
    def of(cls, total: int) -> "PoolBudget":
        if total < 4:
            raise ValueError("a worker needs at least 4 connections")
        bookkeeping = max(1, total // 5)
        rest = total - bookkeeping - 2  # the event loop's connection and the LISTEN connection
        pool = (rest + 1) // 2
        return cls(request_pool=pool, request_overflow=rest - pool, bookkeeping_pool=bookkeeping)

    @property
    def direct(self) -> int:
        """The connections that need a session of their own, never a transaction-mode pooler's."""
        return self.loop_connections + self.listen_connections

    @property
    def total(self) -> int:
        return self.request_pool + self.request_overflow + self.bookkeeping_pool + self.direct


def connection_allowance(url: str) -> tuple[int, int, int]:
    """PostgreSQL's ``(max_connections, reserved, in use now)``: what ordinary roles may open is the first less
    the second (``superuser_reserved_connections`` plus PostgreSQL 16's ``reserved_connections``)."""
    import psycopg

    conninfo = make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        rows: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
            ).fetchall()
        )
        in_use = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()
    reserved = int(rows.get("superuser_reserved_connections", 0)) + int(rows.get("reserved_connections", 0))
    return int(rows["max_connections"]), reserved, int(in_use[0]) if in_use else 0


# SQLSTATE classes and codes that mean "the database is not there right now", not "this request is wrong":
# 08 connection exceptions, 57P01-57P05 (admin/crash shutdown, cannot connect now, database dropped, idle
# session timeout), 53300 too many connections.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05", "53300"})
_UNAVAILABLE_MESSAGES = (
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "connection refused",
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "connection is closed",
    "consuming input failed",
    "could not receive data from server",
    "could not send data to server",
    "connection timeout expired",
    "connection failed",
    "sorry, too many clients already",
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (raised by SQLAlchemy or psycopg, possibly wrapped) means the database cannot be reached
    or is restarting: an answer to retry later (503), never a fault of the request or of the code (500).

    SQLite's "database is locked" after its busy timeout counts too: the writer ahead held the lock too long.
    """
    import psycopg
    from psycopg import errors as pg_errors

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.TimeoutError):  # every pooled connection was busy for pool_timeout
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.orig is not None:
            current = current.orig
            continue
        if isinstance(current, psycopg.Error):
            sqlstate = current.sqlstate
            # libpq's own connection failures (refused, closed, lost) carry no SQLSTATE; an OperationalError
            # with one is not necessarily retryable (54000, program limit exceeded, is one too).
            if isinstance(current, psycopg.OperationalError) and sqlstate is None:
                return True
            if isinstance(current, pg_errors.AdminShutdown | pg_errors.CrashShutdown | pg_errors.CannotConnectNow):
                return True
            if sqlstate is not None and (sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES):
                return True
            if isinstance(current, psycopg.InterfaceError) and "closed" in str(current).lower():
                return True
        if isinstance(current, sqlite3.OperationalError) and "database is locked" in str(current):
            return True
        if isinstance(current, psycopg.Error) and any(m in str(current).lower() for m in _UNAVAILABLE_MESSAGES):
            return True
        current = current.__cause__
    return False


def _make_sqlite_transactional(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks savepoints; take it over.
    # Writers begin IMMEDIATE so they queue on the write lock up front instead of failing on a lock
    # upgrade; engines marked ``read_only`` (see ``read_only_engine``) begin DEFERRED so readers run
    # side by side under WAL.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get("ix_read_only", False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def read_only_engine(engine: Engine, *, autocommit: bool = False) -> Engine:
    """The same pool for reads: SQLite begins its transactions DEFERRED.

    ``autocommit`` (PostgreSQL): each statement runs on its own. At READ COMMITTED every statement takes its
    own snapshot inside a transaction too, so for short reads (TAXII GETs, authentication) BEGIN and COMMIT
    bought nothing but two round trips. Reports keep transactions: they stream with server-side cursors.
    """
    if autocommit and engine.dialect.name == "postgresql":
        return engine.execution_options(ix_read_only=True, isolation_level="AUTOCOMMIT")
    return engine.execution_options(ix_read_only=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction for a CLI command or job: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class LoopConnection:
    """One PostgreSQL connection for the few statements a worker runs on its event loop, where a trip through
    the thread pool and back would cost more than the statement (``store.read_ahead``). Statements take turns;
    the connection opens on first use and again after a failure. ``run`` answers ``None`` when the database
    cannot be reached: its callers then take the ordinary, threaded path, which reports the error.
    """

    def __init__(self, url: str) -> None:
        self.conninfo = make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._turn = asyncio.Lock()

    async def run(self, statement: Callable[["psycopg.AsyncConnection[Any]"], Awaitable[T]]) -> T | None:
        import psycopg

        async with self._turn:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, prepare_threshold=None
                    )
                return await statement(self._connection)
            except psycopg.Error:
                await self._discard()
                return None

    async def close(self) -> None:
        async with self._turn:
            await self._discard()

    async def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            await connection.close()


def on_checkouts(engine: Engine, checked_out: Callable[[], object], checked_in: Callable[[], object]) -> None:
    """Call ``checked_out`` / ``checked_in`` as ``engine``'s pool hands out and takes back connections (the
    pool-use gauge of /metrics)."""
    event.listen(engine.pool, "checkout", lambda *_: checked_out())
    event.listen(engine.pool, "checkin", lambda *_: checked_in())
