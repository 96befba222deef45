"""Partner servers for the sync tests: live instances of this server (one per backend, started once per
worker), the OASIS reference server, and a fresh partner collection per test."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import make_url

from tests.conftest import make_test_database
from tests.fixtures.live_server import LiveServer, live_server
from tests.fixtures.peers import MedallionServer, Partner, new_partner
from tests.fixtures.postgres import drop_database

OTHER_BACKEND = {"postgresql": "sqlite", "sqlite": "postgresql"}


@pytest.fixture(scope="session")
def partner_servers(
    pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], LiveServer]]:
    """``get(backend)``: a live instance of this server on its own database of that backend, started on demand."""
    servers: dict[str, LiveServer] = {}
    with ExitStack() as stack:

        def get(backend: str) -> LiveServer:
            if backend not in servers:
                url = make_test_database(pg_admin_url, tmp_path_factory, backend, "partner")
                if backend == "postgresql":
                    stack.callback(drop_database, pg_admin_url, str(make_url(url).database))
                servers[backend] = stack.enter_context(live_server(url))
            return servers[backend]

        yield get


@pytest.fixture
def partner(partner_servers: Callable[[str], LiveServer], backend: str) -> Partner:
    """A new collection on a live instance whose database is of the other backend than ours."""
    return new_partner(partner_servers(OTHER_BACKEND[backend]))


@pytest.fixture(scope="session")
def medallion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MedallionServer]:
    server = MedallionServer(tmp_path_factory.mktemp("medallion"))
    with server.serving():
        yield server
