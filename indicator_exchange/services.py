"""The application context: one typed ``AppServices`` per worker, built by the lifespan (``open_services``).

Engines and session factories are kept by role, so a role can point elsewhere (a read replica for ``read``)
without touching the code that uses it. Everything a request needs from the worker is a field here; this is
the only module that touches ``app.state`` (``services_of``), so mypy sees every field a route reads.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from indicator_exchange.audit.writer import AuditWriter
from indicator_exchange.auth.service import CallerCache
from indicator_exchange.live.hub import Hub
from indicator_exchange.live.listener import start_live, stop_live
from indicator_exchange.runtime import MemoryReleaser, tune_garbage_collector
from indicator_exchange.settings import Settings
from indicator_exchange.store.catalog import CatalogCache
from indicator_exchange.store.engine import (
    LoopConnection,
    PoolBudget,
    StoreFeatures,
    database_unavailable,
    features,
    make_engine,
    make_sessionmaker,
    read_only_engine,
    session_scope,
)
from indicator_exchange.store.read_ahead import ReadAhead
from indicator_exchange.store.replicas import ReplicaSet
from indicator_exchange.store.statistics import StatisticsKeeper

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Engines:
    """The worker's engines by role. ``read`` is where reads go (today the primary itself)."""

    primary: Engine
    read: Engine
    bookkeeping: Engine  # audit rows, key last-use, rate counters


@dataclass(frozen=True, slots=True)
class SessionFactories:
    """Session factories by role."""

    writes: sessionmaker[Session]  # one transaction per request that may write (primary)
    reads: sessionmaker[Session]  # read transactions (reports stream with server-side cursors)
    statements: sessionmaker[Session]  # short reads without BEGIN/COMMIT where the store allows it (TAXII, auth)
    bookkeeping: sessionmaker[Session]
    bookkeeping_statements: sessionmaker[Session]  # single-statement bookkeeping, each committing on its own


@dataclass(slots=True)
class AppServices:
    """What one worker serves requests with. Mutable only for tests (``clock``, ``settings`` fields)."""

    settings: Settings
    features: StoreFeatures
    engines: Engines
    sessions: SessionFactories
    callers: CallerCache
    catalog: CatalogCache
    read_ahead: ReadAhead
    loop_connection: LoopConnection | None  # None: the store has no event-loop connection (SQLite)
    audit_writer: AuditWriter
    statistics: StatisticsKeeper
    clock: Callable[[], datetime] = utc_now  # tests replace it to move time (rate windows, key expiry)
    live_hub: Hub | None = None  # commit notifications for streams and long polls (live.hub); set while serving
    replicas: ReplicaSet | None = None  # IX_READ_REPLICA_URLS (store.replicas); None: every read on the primary

    def read_fresh(
        self,
        read: Callable[[Session], T],
        *,
        collection_id: uuid.UUID | None = None,
        statements: bool = False,
    ) -> T:
        """``read`` (reports, match index loads, stream batches) on a replica that has replayed what the primary
        holds now — the collection's clock and the auth epoch, or without a collection the WAL position
        (``ReplicaSet.fresh``) — else on the primary; run again on the primary when the replica stops answering
        in the middle, so the client sees no error. ``statements``: without BEGIN/COMMIT."""
        primary = self.sessions.statements if statements else self.sessions.reads
        replica = None
        if self.replicas is not None:
            replica = self.replicas.fresh(self.sessions.statements, collection_id=collection_id)
        if replica is not None and self.replicas is not None:
            try:
                with session_scope(replica.statements if statements else replica.reads) as session:
                    return read(session)
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                self.replicas.failed(replica, exc)
        with session_scope(primary) as session:
            return read(session)


_ATTRIBUTE = "services"


def install(app: Starlette, services: AppServices) -> None:
    setattr(app.state, _ATTRIBUTE, services)


def services_of(app: object) -> AppServices:
    """The services of ``app`` (a Starlette app; typed ``object`` for ``TestClient.app``); ``RuntimeError``
    before its lifespan has started."""
    found = getattr(getattr(app, "state", None), _ATTRIBUTE, None)
    if not isinstance(found, AppServices):
        raise RuntimeError("the application's lifespan has not started (use `with TestClient(app)`)")
    return found


def services(request: HTTPConnection) -> AppServices:
    return services_of(request.app)


@asynccontextmanager
async def open_services(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> AsyncIterator[AppServices]:
    """Build a worker's services, start its background threads, and close everything on the way out."""
    # Every connection a worker may open comes out of one budget (IX_DB_CONNECTIONS_PER_WORKER, README).
    budget = PoolBudget.of(settings.connections_per_worker)
    engine = make_engine(
        settings.database_url,
        pool_size=budget.request_pool,
        max_overflow=budget.request_overflow,
        pooled=settings.database_pooled,
    )
    store = features(engine)
    read = engine
    bookkeeping = engine
    if store.separate_bookkeeping:
        bookkeeping = make_engine(
            settings.database_url,
            pool_size=budget.bookkeeping_pool,
            max_overflow=0,
            asynchronous_commit=True,
            pooled=settings.database_pooled,
        )
    bookkeeping_sessions = make_sessionmaker(bookkeeping)
    # Audit rows, last_used_at and rate counters are single statements (the counters are one upsert each):
    # where the store allows it each commits on its own, one round trip instead of three.
    factories = SessionFactories(
        writes=make_sessionmaker(engine),
        reads=make_sessionmaker(read_only_engine(read)),
        statements=make_sessionmaker(read_only_engine(read, autocommit=True)),
        bookkeeping=bookkeeping_sessions,
        bookkeeping_statements=(
            make_sessionmaker(bookkeeping.execution_options(isolation_level="AUTOCOMMIT"))
            if store.separate_bookkeeping
            else bookkeeping_sessions
        ),
    )
    callers = CallerCache(settings.auth_cache_seconds)
    audit_writer = AuditWriter(factories.bookkeeping_statements, spool_size=settings.audit_spool_size, callers=callers)
    replicas = (
        ReplicaSet(
            settings.replica_urls,
            max_lag_seconds=settings.replica_max_lag_seconds,
            wait_seconds=settings.replica_wait_seconds,
            check_seconds=settings.replica_check_seconds,
        )
        if settings.replica_urls
        else None
    )
    built = AppServices(
        settings=settings,
        features=store,
        engines=Engines(primary=engine, read=read, bookkeeping=bookkeeping),
        sessions=factories,
        callers=callers,
        catalog=CatalogCache(),
        # With replicas, pages are read ahead on one; a page is served only if the collection's clock and the
        # auth epoch *on the primary* are still those it was read under, so it is never staler than a read.
        read_ahead=ReadAhead(
            factories.statements,
            capacity=settings.read_ahead_pages if store.one_statement_pages else 0,
            run=None if replicas is None else partial(replicas.run_read, factories.statements),
        ),
        loop_connection=LoopConnection(settings.session_database_url) if store.loop_connection else None,
        audit_writer=audit_writer,
        statistics=StatisticsKeeper(engine, interval_seconds=settings.statistics_interval_seconds),
        clock=clock,
        replicas=replicas,
    )
    audit_writer.start()
    built.live_hub, live_listener = start_live(settings, engine)
    if built.replicas is not None:
        built.replicas.start()
    if settings.statistics_interval_seconds > 0:
        built.statistics.start()
    tune_garbage_collector()
    memory = MemoryReleaser(settings.memory_release_seconds)
    memory.start()
    try:
        yield built
    finally:
        stop_live(built.live_hub, live_listener)
        audit_writer.close()
        if built.replicas is not None:
            built.replicas.close()
        memory.stop()
        built.statistics.stop()
        built.read_ahead.close()
        if built.loop_connection is not None:
            await built.loop_connection.close()
        if bookkeeping is not engine:
            bookkeeping.dispose()
        engine.dispose()
