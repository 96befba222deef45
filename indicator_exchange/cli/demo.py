"""The ``demo`` command: a store loaded with a demo, its keys and examples printed, then served."""

import shlex
from typing import Annotated

import typer

from indicator_exchange.cli.common import (
    fail,
    load_settings,
)
from indicator_exchange.cli.serve import serve


def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve after loading.")] = True,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (`make demo PORT=8001`).", min=1, max=65535)] = 8000,
) -> None:
    """Create the database, load a demo (API root, collections, indicators), print keys and examples, serve.

    The printed examples run as printed, from any directory. A busy port fails before anything is loaded.
    Re-running it revokes the demo keys it printed before.
    """
    from indicator_exchange.demo import load_demo
    from indicator_exchange.store import migrate
    from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope

    if serve_after:
        _require_free_port(host, port)
    settings = load_settings()
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            info = load_demo(session, settings)
    finally:
        engine.dispose()
    info.database = migrate.describe_database(settings)
    path = migrate.sqlite_file(settings.database_url)
    info.database_env = f"IX_DATABASE_URL={shlex.quote(f'sqlite:///{path}')} " if path is not None else ""
    base = f"http://{host}:{port}"
    typer.echo(info.describe(base))
    if serve_after:
        serve(host=host, port=port, workers=1, tls_cert=None, tls_key=None, log_level="info")


def _require_free_port(host: str, port: int) -> None:
    """Fail before loading anything or printing keys when the port is taken (uvicorn would fail after)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        fail(f"cannot bind {host}: {exc}")
        return
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no clash
        try:
            probe.bind(address)
        except OSError as exc:
            fail(
                f"port {port} on {host} is not free ({exc.strerror}); stop what listens there or pick another "
                f"port: `make demo PORT={port + 1}` (or `indicator-exchange demo --port {port + 1}`)"
            )
