"""The application factory: ``create_app(settings)`` builds everything explicitly, nothing at import."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from indicator_exchange import __version__
from indicator_exchange.error_handlers import install_error_handlers
from indicator_exchange.settings import Settings, get_settings
from indicator_exchange.store.engine import make_engine, make_sessionmaker, read_only_engine
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
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        app.state.engine = engine
        app.state.sessions = make_sessionmaker(engine)
        app.state.read_sessions = make_sessionmaker(read_only_engine(engine))
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="indicator-exchange",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    def healthz() -> dict[str, str]:
        """Liveness probe for load balancers and docker-compose."""
        return {"status": "ok"}

    # TAXII routes last: their `/{api_root}/...` paths would shadow fixed prefixes registered after them.
    app.include_router(taxii_router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (multi-worker serving re-imports the app per worker)."""
    return create_app(get_settings())
