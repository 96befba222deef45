"""Operable: /metrics after a known workload, /readyz, the request id (answer header, log line, audit row),
JSON logs on request, and no secret in any log line of a live server (grepped)."""

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.registry import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.observe import startup_line
from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine
from indicator_exchange.store.models import AuditEvent
from tests.conftest import make_settings
from tests.fixtures.factories import envelope, make_indicator
from tests.fixtures.live_server import IX, START_SECONDS, free_port
from tests.scale.conftest import make_feed


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def app_client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(db_url))) as client:
        yield client


def test_metrics_after_a_known_workload(app_client: TestClient, session: Session) -> None:
    feed = make_feed(session)
    admin.update_principal(session, name=feed.reader.principal, requests_per_minute=3)
    session.commit()
    route = "/{api_root}/collections/{collection_id}/objects/"
    before = {
        "ingested": _sample("ix_objects_ingested_total"),
        "served": _sample("ix_objects_served_total"),
        "limited": _sample("ix_rate_limited_total"),
        "latency": _sample("ix_http_request_seconds_count", method="GET", route=route),
    }
    answer = app_client.post(feed.url, json=envelope(*(make_indicator(n) for n in range(7))), headers=feed.writer.post)
    assert answer.status_code == 202
    statuses = [app_client.get(feed.url, params={"limit": 5}, headers=feed.reader.basic).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert _sample("ix_objects_ingested_total") - before["ingested"] == 7
    assert _sample("ix_objects_served_total") - before["served"] == 15
    assert _sample("ix_rate_limited_total") - before["limited"] == 2
    assert _sample("ix_http_request_seconds_count", method="GET", route=route) - before["latency"] == 5
    scraped = generate_latest(REGISTRY).decode()  # what /metrics sends (its allow-list is tested elsewhere)
    for family in (
        "ix_http_requests_total",
        "ix_http_request_seconds_bucket",
        "ix_objects_served_total",
        "ix_objects_ingested_total",
        "ix_rate_limited_total",
        "ix_audit_write_failures_total",
        "ix_db_pool_connections",
        "ix_db_pool_capacity",
        "ix_replica_lag_seconds",
        "ix_stream_subscribers",
        "ix_sync_lag_seconds",
        "ix_matcher_index_patterns",
        "ix_matcher_refresh_seconds",
    ):
        assert re.search(rf"^# TYPE {family.removesuffix('_bucket')} ", scraped, re.MULTILINE), family


def test_readyz_says_ready_at_head_and_not_after_a_schema_change(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ready.db'}"
    migrate.upgrade(url)
    with TestClient(create_app(make_settings(url))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["schema"] == migrate.head_revision()
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
        engine.dispose()
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert "db upgrade" in stale.json()["reason"]
        assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with TestClient(create_app(make_settings(url, statistics_interval_seconds=0))) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["database"] == "unreachable"


def test_the_request_id_is_answered_and_audited(app_client: TestClient, session: Session) -> None:
    feed = make_feed(session)
    mine = app_client.get(feed.url, headers={**feed.reader.basic, "X-Request-ID": "partner-trace-42"})
    theirs = app_client.get(feed.url, headers={**feed.reader.basic, "X-Request-ID": "bad id with spaces"})
    assert mine.headers["x-request-id"] == "partner-trace-42"
    generated = theirs.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    deadline = time.monotonic() + 10
    while True:
        session.expire_all()
        ids = set(session.scalars(select(AuditEvent.request_id).where(AuditEvent.path == feed.url)))
        if {"partner-trace-42", generated} <= ids or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {"partner-trace-42", generated} <= ids


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_json_logs_carry_the_request_id_and_never_a_secret(db_url: str, session: Session, tmp_path: Path) -> None:
    feed = make_feed(session)
    secret = feed.reader.secret
    port = free_port()
    log = tmp_path / "serve.log"
    env = dict(os.environ, IX_DATABASE_URL=db_url, IX_LOG_FORMAT="json", IX_DEFAULT_REQUESTS_PER_MINUTE="0")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [IX, "serve", "--port", str(port), "--workers", "2", "--log-level", "info"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as client:
            requests = [
                client.get(feed.url, headers=feed.reader.basic),
                client.get(feed.url, headers=feed.reader.bearer),
                client.get(feed.url, headers={"Authorization": f"Bearer {feed.reader.key_id}.{secret}x"}),
                client.get(
                    feed.url,
                    params={"secret": secret, "token": f"{feed.reader.key_id}.{secret}"},
                    headers=feed.reader.basic,
                ),
                client.post(feed.url, content=json.dumps({"objects": [{"secret": secret}]}), headers=feed.writer.post),
            ]
            answered = [r.headers["x-request-id"] for r in requests]
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:  # a loaded machine: the log written so far is what is checked
            process.kill()
            process.wait(10)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines
    parsed = [json.loads(line) for line in lines]  # every line is JSON
    logged_ids = {entry.get("request_id") for entry in parsed}
    assert set(answered) <= logged_ids, (answered, lines[-10:])
    text_logged = log.read_text()
    for value in (secret, feed.writer.secret):
        assert value not in text_logged
    assert uuid.UUID(int=0).hex not in answered


def test_start_up_warnings_are_json_lines_when_the_log_is() -> None:
    """A start-up check writes before logging is configured: with IX_LOG_FORMAT=json it must still write JSON
    (the live test above found the connection-budget warning as plain text among the JSON lines)."""
    line = json.loads(startup_line("json", "warning: 40 connections exceed the 97 the database allows"))
    assert (line["level"], line["logger"]) == ("warning", "indicator_exchange.serve")
    assert line["message"] == "40 connections exceed the 97 the database allows"
    assert startup_line("text", "warning: plain") == "warning: plain"
