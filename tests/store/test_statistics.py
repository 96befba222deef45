"""Planner statistics kept fresh by the service when autovacuum does not (store.statistics)."""

import logging
import socket
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from indicator_exchange.store import statistics
from indicator_exchange.store.bulk import insert_rows
from indicator_exchange.store.models import DetectionRecord
from tests.conftest import engine_for
from tests.fixtures.factories import make_collection


def _analyzed_count(url: str) -> int:
    with engine_for(url).connect() as connection:
        value = connection.execute(
            text("SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'detection_record'")
        ).scalar_one()
    return int(value)


def _load(session: Session, rows: int) -> None:
    collection = make_collection(session)
    now = datetime.now(UTC)
    insert_rows(
        session,
        DetectionRecord.__table__,  # type: ignore[arg-type]
        [
            {
                "collection_id": collection,
                "indicator_id": f"indicator--{uuid.uuid4()}",
                "principal_id": None,
                "detector": "d",
                "kind": "proxy_ip",
                "cluster": None,
                "first_seen": now,
                "last_seen": now,
                "confidence": 50,
                "accounts_linked": None,
                "requests": None,
                "outcome": "created",
                "received_at": now,
            }
            for _ in range(rows)
        ],
    )
    # A backend publishes its table counters when it goes idle, at most once a second; ask this one (the
    # transaction's, which made the inserts) to publish at this commit (PostgreSQL 15+). Asked in a transaction
    # of its own, the request could land on another pooled connection and the counters come up to a second late.
    session.execute(text("SELECT pg_stat_force_next_flush()"))
    session.commit()


@pytest.fixture
def autovacuum_off(db_url: str) -> str:
    """The behaviour under test is the service's stand-in for autovacuum: with autovacuum on, the keeper stays
    idle and autovacuum's own ANALYZE races the assertions, so these tests would prove nothing. They fail."""
    if statistics.autovacuum_enabled(engine_for(db_url)):
        pytest.fail(
            "this PostgreSQL runs with autovacuum on, so the statistics keeper cannot be exercised: run the tests "
            "against a server with autovacuum = off (the throwaway cluster is started so: IX_TEST_THROWAWAY_PG=1)",
            pytrace=False,
        )
    return db_url


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("autovacuum_off")
class TestAnalyzeStale:
    def test_a_table_changed_by_more_than_a_tenth_is_analysed(self, db_url: str, session: Session) -> None:
        statistics.analyze_stale(engine_for(db_url), force=True)
        before = _analyzed_count(db_url)
        _load(session, statistics.STALE_MINIMUM + 100)
        assert "detection_record" in statistics.analyze_stale(engine_for(db_url))
        assert _analyzed_count(db_url) > before

    def test_a_fresh_table_is_left_alone(self, db_url: str, session: Session) -> None:
        _load(session, 10)
        statistics.analyze_stale(engine_for(db_url), force=True)
        assert "detection_record" not in statistics.analyze_stale(engine_for(db_url))


def test_sqlite_needs_nothing(sqlite_url: str) -> None:
    assert statistics.analyze_stale(engine_for(sqlite_url), force=True) == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("autovacuum_off")
def test_a_nudge_analyses_now_not_at_the_next_interval(db_url: str, session: Session) -> None:
    """A write nudges the keeper: a fresh bulk load gets real plans within a second or so, not an hour."""
    engine = engine_for(db_url)
    statistics.analyze_stale(engine, force=True)
    keeper = statistics.StatisticsKeeper(engine, interval_seconds=3600)
    keeper.start()
    try:
        assert keeper._thread is not None  # with autovacuum off the keeper runs
        before = _analyzed_count(db_url)
        _load(session, statistics.STALE_MINIMUM + 100)
        keeper.nudge()
        deadline = time.monotonic() + 10
        while _analyzed_count(db_url) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _analyzed_count(db_url) > before
    finally:
        keeper.stop()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("autovacuum_off")
def test_an_unavailable_database_is_one_warning_line_not_a_traceback(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """While PostgreSQL restarts the keeper's checks fail: a warning each, never an error with a traceback."""
    keeper = statistics.StatisticsKeeper(engine_for(db_url), interval_seconds=3600)
    keeper.start()
    try:
        assert keeper._thread is not None
        with socket.socket() as sock:  # a port nobody listens on: connection refused, as during a restart
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        keeper.engine = engine_for(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        with caplog.at_level(logging.WARNING, logger=statistics.__name__):
            keeper.nudge()
            deadline = time.monotonic() + 10
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        keeper.stop()
    assert caplog.records, "the keeper never tried"
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records), caplog.text
    assert "unavailable" in caplog.records[0].getMessage()
