"""The application factory: ``create_app(settings)`` builds everything explicitly, nothing at import."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from indicator_exchange import __version__
from indicator_exchange.admin.routes import router as admin_router
from indicator_exchange.api_docs import install_api_docs
from indicator_exchange.audit.middleware import AuditMiddleware
from indicator_exchange.error_handlers import install_error_handlers
from indicator_exchange.forwarding import EdgeHeaders
from indicator_exchange.ingest.routes import router as ingest_router
from indicator_exchange.lifecycle.routes import router as lifecycle_router
from indicator_exchange.match.index import INDEXES
from indicator_exchange.match.routes import router as match_router
from indicator_exchange.metrics import replica_measured, replica_read, watch_pool
from indicator_exchange.metrics_route import router as metrics_router
from indicator_exchange.observe import RequestObserver
from indicator_exchange.observe import router as readiness_router
from indicator_exchange.openapi_document import install_openapi
from indicator_exchange.reports.dashboard import router as dashboard_router
from indicator_exchange.reports.routes import router as reports_router
from indicator_exchange.services import install, open_services, services_of, utc_now
from indicator_exchange.settings import Settings, get_settings
from indicator_exchange.stream.routes import router as live_router
from indicator_exchange.taxii.direct import DirectPolls
from indicator_exchange.taxii.routes import router as taxii_router

DESCRIPTION = """
STIX 2.1 threat-indicator sharing over TAXII 2.1 for AI labs and cloud providers.

Authenticate with an API key: HTTP Basic (key id as user name, secret as password) or
`Authorization: Bearer <key id>.<secret>`. TAXII endpoints answer `application/taxii+json;version=2.1`,
errors included.
"""


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """Build the service for ``settings`` (default: the ``IX_*`` environment); ``clock``: tests move time."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, clock=clock) as built:
            if built.live_hub is not None:  # a commit heard of wakes the matcher's delta refresh (match.index)
                built.live_hub.on_commit(INDEXES.note_commit)
                INDEXES.start_refresher(built.sessions.reads)
            install(app, built)
            watch_pool(built.engines.primary, "requests")
            if built.replicas is not None:
                built.replicas.on_measure, built.replicas.on_read = replica_measured, replica_read
            if built.engines.bookkeeping is not built.engines.primary:
                watch_pool(built.engines.bookkeeping, "bookkeeping")
            yield
            INDEXES.stop_refresher()

    app = FastAPI(
        title="indicator-exchange",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by install_api_docs from local assets: FastAPI's own pages load them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(DirectPolls)
    # Outside the routes and their transactions: every request is audited, failed and rolled-back ones too.
    app.add_middleware(AuditMiddleware, services=lambda: services_of(app))
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
    app.include_router(lifecycle_router)
    app.include_router(match_router)
    app.include_router(live_router)
    app.include_router(reports_router)
    app.include_router(dashboard_router)
    # TAXII routes last: their `/{api_root}/...` paths would shadow fixed prefixes registered after them.
    app.include_router(taxii_router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (multi-worker serving re-imports the app per worker)."""
    return create_app(get_settings())
