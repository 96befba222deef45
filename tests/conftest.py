"""Shared fixtures: real PostgreSQL and SQLite stores, the app under test, and factories."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.app import create_app
from indicator_exchange.settings import Settings, get_settings
from indicator_exchange.store import migrate
from indicator_exchange.store.engine import is_sqlite, make_engine, make_sessionmaker
from indicator_exchange.store.models import Base
from tests.fixtures.postgres import drop_database, fresh_database, postgres_server

BACKENDS = ["postgresql", "sqlite"]


def pytest_configure(config: pytest.Config) -> None:
    # One id per test run, inherited by xdist workers: runs started side by side on one machine (two
    # developers, or a developer and CI) never share, or drop, each other's databases.
    os.environ.setdefault("IX_TEST_RUN_ID", uuid.uuid4().hex[:8])


def _worker() -> str:
    return f"{os.environ['IX_TEST_RUN_ID']}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def make_test_database(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory, backend: str, tag: str) -> str:
    """A migrated, empty database of ``backend`` private to this worker and ``tag``."""
    if backend == "postgresql":
        url = fresh_database(pg_admin_url, f"ix_test_{tag}_{_worker()}")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / f'{tag}.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = make_test_database(pg_admin_url, tmp_path_factory, "postgresql", "main")
    yield url
    drop_database(pg_admin_url, f"ix_test_main_{_worker()}")


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'main.db'}"
    migrate.upgrade(url)
    return url


def slow_on(slow_backend: str) -> pytest.MarkDecorator:
    """Parametrise ``backend`` with ``slow_backend``'s run behind the ``slow`` marker: for a long test whose
    other backend already guards the default run (``make test-slow`` runs both)."""
    params = [pytest.param(b, marks=pytest.mark.slow) if b == slow_backend else b for b in BACKENDS]
    return pytest.mark.parametrize("backend", params, indirect=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database of the parametrised backend, emptied after each test."""
    url = str(request.getfixturevalue("pg_url" if backend == "postgresql" else "sqlite_url"))
    yield url
    empty_database(url)


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url, pool_size=2)
    return _ENGINES[url]


def empty_database(url: str) -> None:
    """Remove every row (audit rows included: tests may, the application may not)."""
    engine = engine_for(url)
    # auth_epoch is the service's own single-row counter, not data: it stays.
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "auth_epoch"]
    with engine.begin() as conn:
        if is_sqlite(url):
            for name in tables:
                conn.execute(text(f'DELETE FROM "{name}"'))
        else:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in tables) + " RESTART IDENTITY CASCADE"))


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    return make_sessionmaker(engine_for(db_url))


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging and inspecting data; commit explicitly to make data visible to the app."""
    with sessions() as s:
        yield s


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test database as the CLI finds it (IX_DATABASE_URL), with the cached settings cleared around it."""
    monkeypatch.setenv("IX_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def make_settings(url: str, **overrides: object) -> Settings:
    # No failure throttle by default: many tests send wrong keys on purpose (tests/auth/test_throttle.py
    # turns it on).
    values: dict[str, object] = {"database_url": url, "default_requests_per_minute": 0, "auth_failures_per_minute": 0}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for engine in _ENGINES.values():
        engine.dispose()


ROOT = Path(__file__).resolve().parents[1]
