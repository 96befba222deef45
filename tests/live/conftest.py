"""A live `serve` per backend for the live-delivery tests (streams need real HTTP: the test client buffers a
response until it ends), and the test's data in it, emptied after each test."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.store.engine import make_sessionmaker, session_scope
from tests.conftest import BACKENDS, empty_database, engine_for
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key
from tests.fixtures.live_server import LiveServer, live_server

# Short heartbeats and small batches, so a test sees several of each in seconds.
LIVE_ENV = {"IX_LIVE_HEARTBEAT_SECONDS": "1", "IX_LIVE_BATCH_SIZE": "2", "IX_STATISTICS_INTERVAL_SECONDS": "0"}


@dataclass
class Live:
    server: LiveServer
    url: str
    sessions: sessionmaker[Session]
    collection: uuid.UUID
    key: Key  # read and write, clearance red

    def stream_url(self, collection: uuid.UUID | None = None) -> str:
        return f"{self.server.base}/api/v1/collections/{collection or self.collection}/stream"

    def objects_url(self) -> str:
        return f"{self.server.base}/api1/collections/{self.collection}/objects/"

    def post(self, *objects: dict[str, object], key: Key | None = None, base: str | None = None) -> None:
        url = self.objects_url() if base is None else f"{base}/api1/collections/{self.collection}/objects/"
        answer = httpx.post(url, json=envelope(*objects), headers=(key or self.key).post, timeout=30)
        assert answer.status_code == 202, answer.text
        assert answer.json()["failure_count"] == 0, answer.text

    def add_key(self, name: str, **kwargs: object) -> Key:
        with session_scope(self.sessions) as session:
            return make_key(session, name, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=BACKENDS)
def live_backend(request: pytest.FixtureRequest) -> Iterator[tuple[LiveServer, str]]:
    url = str(request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url"))
    with live_server(url, env=LIVE_ENV) as server:
        yield server, url


@pytest.fixture
def live(live_backend: tuple[LiveServer, str]) -> Iterator[Live]:
    server, url = live_backend
    sessions = make_sessionmaker(engine_for(url))
    with session_scope(sessions) as session:
        collection = make_collection(session)
        key = make_key(session, "publisher", clearance="red", read=[collection], write=[collection])
    yield Live(server, url, sessions, collection, key)
    empty_database(url)


def indicators(start: int, count: int) -> list[dict[str, object]]:
    return [make_indicator(n) for n in range(start, start + count)]
