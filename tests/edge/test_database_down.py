"""Every request while the database is unreachable is a 503 with Retry-After, logged as a warning without a
traceback; its audit row waits in the worker's spool and is written with the next successful write."""

import logging
import socket
import time
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange import metrics
from indicator_exchange.app import create_app
from indicator_exchange.audit.service import AuditRecord
from indicator_exchange.audit.writer import AuditWriter
from indicator_exchange.services import services_of
from indicator_exchange.store.engine import make_engine, make_sessionmaker
from indicator_exchange.store.models import AuditEvent
from tests.conftest import engine_for, make_settings

BASIC = {"Authorization": "Basic aXhrXzAxMjM0NTY3ODlhYmNkZWY6c2VjcmV0LXNlY3JldA=="}


def _nowhere() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return f"postgresql://postgres@127.0.0.1:{port}/nowhere"


@pytest.fixture
def down_client() -> TestClient:
    app = create_app(make_settings(_nowhere(), statistics_interval_seconds=0, read_ahead_pages=0))
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "path",
    ["/taxii2/", "/api1/collections/", "/api1/collections/5b2c0d4e-1111-4c22-8e33-123456789abc/objects/"],
)
def test_taxii_paths_answer_a_taxii_503(down_client: TestClient, path: str, caplog: pytest.LogCaptureFixture) -> None:
    with down_client:
        answer = down_client.get(path, headers=BASIC)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == "application/taxii+json;version=2.1"
    assert answer.json()["http_status"] == "503"


def test_other_paths_answer_a_json_503(down_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    before = metrics.DATABASE_UNAVAILABLE._value.get()
    with down_client:
        answer = down_client.get("/api/v1/admin/principals", headers=BASIC)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == "Service unavailable"
    assert metrics.DATABASE_UNAVAILABLE._value.get() == before + 1


def test_the_audit_rows_of_refused_requests_are_spooled(down_client: TestClient) -> None:
    with down_client:
        for _ in range(3):
            assert down_client.get("/taxii2/", headers=BASIC).status_code == 503
        writer: AuditWriter = services_of(down_client.app).audit_writer
        assert writer.spooled == 3


def _entry(path: str) -> AuditRecord:
    return AuditRecord(at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC), method="GET", path=path, status_code=503)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_spooled_rows_are_written_by_the_next_successful_write(db_url: str, session: Session) -> None:
    down = make_engine(_nowhere(), pool_size=1)
    writer = AuditWriter(make_sessionmaker(down), spool_size=2)
    dropped = metrics.AUDIT_DROPPED._value.get()
    for n in range(3):
        writer.write(_entry(f"/spooled/{n}"))
    assert writer.spooled == 2  # the third did not fit
    assert metrics.AUDIT_DROPPED._value.get() == dropped + 1
    writer.sessions = make_sessionmaker(engine_for(db_url))  # the database is back
    writer.write(_entry("/after"))
    assert writer.spooled == 0
    paths = session.execute(select(AuditEvent.path).order_by(AuditEvent.id)).scalars().all()
    assert paths == ["/after", "/spooled/0", "/spooled/1"]
    assert session.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 3
    down.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_spooled_row_the_database_refuses_does_not_hold_back_the_others(
    db_url: str, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    down = make_engine(_nowhere(), pool_size=1)
    writer = AuditWriter(make_sessionmaker(down), spool_size=10)
    for path in ("/first", "/nul\x00byte", "/last"):
        writer.write(_entry(path))
    assert writer.spooled == 3
    writer.sessions = make_sessionmaker(engine_for(db_url))
    writer.drain()
    assert writer.spooled == 0
    assert session.execute(select(AuditEvent.path).order_by(AuditEvent.id)).scalars().all() == ["/first", "/last"]
    assert [r for r in caplog.records if r.levelno == logging.ERROR and "could not write the audit row" in r.message]
    down.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_queued_rows_meet_an_outage_in_the_spool_and_are_written_after_it(db_url: str, session: Session) -> None:
    down = make_engine(_nowhere(), pool_size=1)
    writer = AuditWriter(make_sessionmaker(down), spool_size=10)
    assert not writer.enqueue(_entry("/not-started"))  # no writer thread yet: the caller writes it itself
    writer.start(interval_seconds=3600)
    try:
        for n in range(3):
            assert writer.enqueue(_entry(f"/queued/{n}"))
        deadline = time.monotonic() + 10
        while writer.queued and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.queued == 0
        assert writer.spooled == 3  # the database was away: kept, in order
        writer.sessions = make_sessionmaker(engine_for(db_url))  # the database is back
        writer.enqueue(_entry("/after"))
        deadline = time.monotonic() + 10
        while (writer.queued or writer.spooled) and time.monotonic() < deadline:
            writer.drain()
            time.sleep(0.05)
    finally:
        writer.close()
    paths = session.execute(select(AuditEvent.path).order_by(AuditEvent.id)).scalars().all()
    assert sorted(paths) == ["/after", "/queued/0", "/queued/1", "/queued/2"]
    down.dispose()


class _UnacknowledgedCommit(Session):
    """PostgreSQL stopped between making the commit durable and answering it: the client sees a lost
    connection although the rows are stored (what a fast shutdown under load can do)."""

    def commit(self) -> None:
        super().commit()
        lost = psycopg.OperationalError("server closed the connection unexpectedly")
        raise sa_exc.OperationalError("COMMIT", {}, lost)


def test_a_row_whose_commit_was_not_acknowledged_is_not_written_twice(db_url: str, session: Session) -> None:
    engine = engine_for(db_url)
    writer = AuditWriter(sessionmaker(engine, class_=_UnacknowledgedCommit), spool_size=10)
    writer.write(_entry("/acknowledged-by-nobody"))
    assert writer.spooled == 1  # an outage, as far as the writer can tell
    writer.sessions = make_sessionmaker(engine)  # the database is back
    writer.write(_entry("/next"))  # same time as the first: the lookup must tell them apart by id
    writer.drain()
    assert writer.spooled == 0
    paths = session.execute(select(AuditEvent.path).order_by(AuditEvent.id)).scalars().all()
    assert paths == ["/acknowledged-by-nobody", "/next"]
