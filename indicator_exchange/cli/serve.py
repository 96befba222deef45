"""The ``serve`` command: the TAXII 2.1 API, the ingest API and the docs under uvicorn."""

from typing import Annotated

import typer

from indicator_exchange.cli.common import (
    fail,
    load_settings,
    require_schema,
)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; TAXII requires HTTPS off loopback.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (stateless; share the database).")] = 1,
    tls_cert: Annotated[str | None, typer.Option(help="PEM certificate: serve HTTPS directly.")] = None,
    tls_key: Annotated[str | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the TAXII 2.1 API, the ingest API and the docs (OpenAPI at /docs)."""
    from indicator_exchange import serving
    from indicator_exchange.observe import startup_line
    from indicator_exchange.settings import DEMO_COMMUNITY_KEY

    settings = load_settings()
    require_schema(settings)
    if bool(tls_cert) != bool(tls_key):
        fail("--tls-cert and --tls-key go together")
    if workers < 1:
        fail("--workers must be at least 1")
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback and settings.community_key.get_secret_value() == DEMO_COMMUNITY_KEY:
        fail("refusing to serve off loopback with the demo community key; set IX_COMMUNITY_KEY")

    def warn(message: str) -> None:
        typer.echo(startup_line(settings.log_format, message), err=True)

    if not tls_cert and not loopback:
        warn(
            "warning: serving plain HTTP off loopback; TAXII 2.1 requires HTTPS (use --tls-cert/--tls-key "
            "or a TLS-terminating proxy)"
        )
    if settings.db_pool_size is not None:
        warn(
            "warning: IX_DB_POOL_SIZE is deprecated; set IX_DB_CONNECTIONS_PER_WORKER (now "
            f"{settings.connections_per_worker})"
        )
    try:
        if tls_cert and tls_key:
            serving.check_tls(tls_cert, tls_key)
        warning = serving.check_connection_budget(settings, workers)
    except serving.StartupRefused as exc:
        fail(str(exc))
        return
    if warning:
        warn(warning)
    serving.run(
        settings, host=host, port=port, workers=workers, tls_cert=tls_cert, tls_key=tls_key, log_level=log_level
    )


# --- db ----------------------------------------------------------------------------------------------
