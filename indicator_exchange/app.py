"""The application factory: ``create_app(settings)`` builds everything explicitly, nothing at import."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from indicator_exchange import __version__
from indicator_exchange.admin.routes import router as admin_router
from indicator_exchange.api_docs import install_api_docs
from indicator_exchange.audit.middleware import AuditMiddleware
from indicator_exchange.audit.writer import AuditWriter
from indicator_exchange.auth.service import CallerCache
from indicator_exchange.dependencies import utc_now
from indicator_exchange.error_handlers import install_error_handlers
from indicator_exchange.forwarding import EdgeHeaders
from indicator_exchange.ingest.routes import router as ingest_router
from indicator_exchange.match.routes import router as match_router
from indicator_exchange.metrics import router as metrics_router
from indicator_exchange.metrics import watch_pool
from indicator_exchange.observe import RequestObserver
from indicator_exchange.observe import router as readiness_router
from indicator_exchange.openapi import install_openapi
from indicator_exchange.reports.dashboard import router as dashboard_router
from indicator_exchange.reports.routes import router as reports_router
from indicator_exchange.runtime import MemoryReleaser, tune_garbage_collector
from indicator_exchange.settings import Settings, get_settings
from indicator_exchange.store.catalog import CatalogCache
from indicator_exchange.store.engine import (
    LoopConnection,
    PoolBudget,
    is_sqlite,
    make_engine,
    make_sessionmaker,
    read_only_engine,
)
from indicator_exchange.store.statistics import StatisticsKeeper
from indicator_exchange.taxii.direct import DirectPolls
from indicator_exchange.taxii.read_ahead import ReadAhead
from indicator_exchange.taxii.routes import router as taxii_router

DESCRIPTION = """
STIX 2.1 threat-indicator sharing over TAXII 2.1 for AI labs and cloud providers.

Authenticate with an API key: HTTP Basic (key id as user name, secret as password) or
`Authorization: Bearer <key id>.<secret>`. TAXII endpoints answer `application/taxii+json;version=2.1`,
errors included.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for ``settings`` (default: the ``IX_*`` environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every connection a worker may open comes out of one budget (IX_DB_CONNECTIONS_PER_WORKER, README).
        budget = PoolBudget.of(settings.connections_per_worker)
        engine = make_engine(
            settings.database_url,
            pool_size=budget.request_pool,
            max_overflow=budget.request_overflow,
            pooled=settings.database_pooled,
        )
        app.state.engine = engine
        app.state.sessions = make_sessionmaker(engine)
        app.state.read_sessions = make_sessionmaker(read_only_engine(engine))
        app.state.statement_sessions = make_sessionmaker(read_only_engine(engine, autocommit=True))
        bookkeeping = engine
        if not is_sqlite(settings.database_url):
            bookkeeping = make_engine(
                settings.database_url,
                pool_size=budget.bookkeeping_pool,
                max_overflow=0,
                asynchronous_commit=True,
                pooled=settings.database_pooled,
            )
        app.state.bookkeeping_sessions = make_sessionmaker(bookkeeping)
        watch_pool(engine, "requests")
        if bookkeeping is not engine:
            watch_pool(bookkeeping, "bookkeeping")
        # Audit rows, last_used_at and rate counters are single statements (the counters are one upsert each):
        # on PostgreSQL each commits on its own, one round trip instead of three (BEGIN, statement, COMMIT).
        app.state.bookkeeping_statements = (
            app.state.bookkeeping_sessions
            if is_sqlite(settings.database_url)
            else make_sessionmaker(bookkeeping.execution_options(isolation_level="AUTOCOMMIT"))
        )
        audit_writer = AuditWriter(
            app.state.bookkeeping_statements, spool_size=settings.audit_spool_size, callers=app.state.callers
        )
        app.state.audit_writer = audit_writer
        audit_writer.start()
        app.state.read_ahead = ReadAhead(
            app.state.statement_sessions,
            capacity=0 if is_sqlite(settings.database_url) else settings.read_ahead_pages,
        )
        app.state.loop_connection = (
            None if is_sqlite(settings.database_url) else LoopConnection(settings.session_database_url)
        )
        statistics = StatisticsKeeper(engine, interval_seconds=settings.statistics_interval_seconds)
        app.state.statistics = statistics
        if settings.statistics_interval_seconds > 0:
            statistics.start()
        tune_garbage_collector()
        memory = MemoryReleaser(settings.memory_release_seconds)
        memory.start()
        try:
            yield
        finally:
            audit_writer.close()
            memory.stop()
            statistics.stop()
            app.state.read_ahead.close()
            if app.state.loop_connection is not None:
                await app.state.loop_connection.close()
            bookkeeping.dispose()
            engine.dispose()

    app = FastAPI(
        title="indicator-exchange",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by install_api_docs from local assets: FastAPI's own pages load them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.callers = CallerCache(settings.auth_cache_seconds)
    app.state.catalog = CatalogCache()
    app.state.clock = utc_now  # tests replace it to move time (rate windows, key expiry)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(DirectPolls)
    # Outside the routes and their transactions: every request is audited, failed and rolled-back ones too.
    app.add_middleware(AuditMiddleware)
    # Around the audit trail (which records its request id): the request id, latency and object counts
    # (indicator_exchange.observe). Inside EdgeHeaders, which hands the app a scope of its own.
    app.add_middleware(RequestObserver)
    # Outermost: the audit trail, the metrics allow-list and every URL built see the real client and scheme.
    app.add_middleware(EdgeHeaders, settings=settings)

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    def healthz() -> dict[str, str]:
        """Liveness probe for load balancers and docker-compose."""
        return {"status": "ok"}

    install_api_docs(app)
    app.include_router(metrics_router)
    app.include_router(readiness_router)
    app.include_router(admin_router)
    app.include_router(ingest_router)
    app.include_router(match_router)
    app.include_router(reports_router)
    app.include_router(dashboard_router)
    # TAXII routes last: their `/{api_root}/...` paths would shadow fixed prefixes registered after them.
    app.include_router(taxii_router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (multi-worker serving re-imports the app per worker)."""
    return create_app(get_settings())
