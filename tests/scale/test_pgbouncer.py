"""Behind PgBouncer in transaction mode (Debian's, started by the fixture): two workers ingest and page
through the pooler, the event loop's connection goes to the server itself (IX_DIRECT_DATABASE_URL), and the
pooler really carried the request traffic."""

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from indicator_exchange.store.audit import add_event
from indicator_exchange.store.engine import make_engine
from indicator_exchange.store.models import AuditEvent
from tests.fixtures.live_server import IX, live_server
from tests.fixtures.scale import Pooler, pgbouncer
from tests.scale.conftest import make_feed, poll_all, post

pytestmark = [pytest.mark.parametrize("backend", ["postgresql"], indirect=True), pytest.mark.timeout(300)]


def _port(url: str) -> int:
    return int(psycopg.conninfo.conninfo_to_dict(url).get("port") or 5432)


def _database(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


@pytest.fixture
def pooler(db_url: str) -> Iterator[Pooler]:
    with pgbouncer(_port(db_url), pool_size=6) as made:
        yield made


def test_ingest_and_paging_through_the_pooler(db_url: str, session: Session, pooler: Pooler) -> None:
    feed = make_feed(session)
    pooled = pooler.url(_database(db_url))
    env = {"IX_DIRECT_DATABASE_URL": db_url, "IX_STATISTICS_INTERVAL_SECONDS": "0.5"}
    requests = 4  # the 3 posts and the manifest, then the pages
    with live_server(pooled, workers=2, env=env) as server, httpx.Client(base_url=server.base, timeout=30) as client:
        for first in range(0, 600, 200):
            post(client, feed, first, 200)
        for limit in (7, 100, 1000):
            ids = poll_all(client, feed, limit=limit)
            assert len(ids) == 600
            assert len(set(ids)) == 600
            requests += -(-600 // limit)
        manifest = client.get(f"/api1/collections/{feed.collection}/manifest/", headers=feed.reader.basic)
        assert manifest.status_code == 200
        assert len(manifest.json()["objects"]) == 100
        stats = {str(row[0]): row for row in pooler.show("STATS")}
        assert _database(db_url) in stats
        assert int(str(stats[_database(db_url)][1])) > 50, "the requests did not go through the pooler"
        scraped = client.get("/metrics").text.splitlines()
    # Every request audited through the pooler: a statement prepared on one server connection and used on
    # another (PgBouncer 1.18 keeps no prepared statements across transactions) would lose audit rows.
    assert [line for line in scraped if line.startswith("ix_audit_write_failures_total")] == [
        "ix_audit_write_failures_total 0.0"
    ]
    deadline = time.monotonic() + 10
    audited = 0
    while audited < requests and time.monotonic() < deadline:
        session.expire_all()
        audited = (
            session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.collection_id == feed.collection)
            )
            or 0
        )
        time.sleep(0.2)
    assert audited == requests


def test_without_the_direct_url_the_bookkeeping_option_is_refused(db_url: str, pooler: Pooler) -> None:
    """What IX_DIRECT_DATABASE_URL is for: PgBouncer refuses the startup option asynchronous commit needs."""
    refused = subprocess.run(
        [
            IX.replace("indicator-exchange", "python"),
            "-c",
            "import psycopg, sys; psycopg.connect(sys.argv[1], options='-c synchronous_commit=off')",
            pooler.url(_database(db_url)),
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    assert "unsupported startup parameter" in refused.stderr


def test_audit_rows_commit_asynchronously_behind_the_pooler(db_url: str, pooler: Pooler) -> None:
    """The startup option is refused there, so the insert asks for it for its own transaction: no disk flush
    waited for in the request cycle (the audit row is written before the connection takes its next request)."""
    engine = make_engine(pooler.url(_database(db_url)), pool_size=1, asynchronous_commit=True, pooled=True)
    try:
        with engine.connect() as connection:  # one transaction: the setting is visible in it
            row = {"at": datetime.now(UTC), "method": "GET", "path": "/probe", "status_code": 200, "outcome": "ok"}
            add_event(Session(bind=connection), **row)
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
            connection.rollback()
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on", "it leaked out"
    finally:
        engine.dispose()
