"""Idle subscribers cost the database nothing: between commits no connection of the server starts a query
(PostgreSQL's own record, ``pg_stat_activity.query_start``, of every backend of the database)."""

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack

import httpx
import psycopg
import pytest

from indicator_exchange.store.engine import make_sessionmaker, session_scope
from indicator_exchange.store.notify import conninfo_of
from tests.conftest import empty_database, engine_for
from tests.fixtures.factories import Key, make_collection, make_indicator, make_key
from tests.fixtures.live_server import LiveServer, live_server
from tests.live.conftest import LIVE_ENV
from tests.live.sse import Subscription, subscribe

SUBSCRIBERS = 20


def last_queries(url: str) -> dict[int, object]:
    with psycopg.connect(conninfo_of(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, query_start FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
    return {int(pid): started for pid, started in rows}


@pytest.fixture
def idle_server(pg_url: str) -> Iterator[tuple[LiveServer, str]]:
    env = {**LIVE_ENV, "IX_LIVE_HEARTBEAT_SECONDS": "0.5", "IX_READ_AHEAD_PAGES": "0"}
    with live_server(pg_url, env=env) as server:
        yield server, pg_url
    empty_database(pg_url)


def test_idle_streams_start_no_query_between_commits(idle_server: tuple[LiveServer, str]) -> None:
    server, url = idle_server
    with session_scope(make_sessionmaker(engine_for(url))) as session:
        collection = make_collection(session)
        key: Key = make_key(session, "idle", clearance="red", read=[collection], write=[collection])
    stream_url = f"{server.base}/api/v1/collections/{collection}/stream"
    with ExitStack() as stack:
        streams: list[Subscription] = [
            stack.enter_context(subscribe(stream_url, key.basic)) for _ in range(SUBSCRIBERS)
        ]
        for stream in streams:
            assert stream.status == 200
        time.sleep(2.0)  # their first reads and audit rows are done
        before = last_queries(url)
        time.sleep(3.0)  # six heartbeats each
        for stream in streams:
            assert stream.next(timeout=2, skip_heartbeats=False).event == "heartbeat"
        idle = last_queries(url)
        assert idle == before, "an idle subscriber made the server query the database"

        _commit_one_and_see_it_delivered(server, collection, key, streams)
        assert last_queries(url) != idle  # the same measure sees a commit's reads


def _commit_one_and_see_it_delivered(
    server: LiveServer, collection: uuid.UUID, key: Key, streams: Sequence[Subscription]
) -> None:
    answer = httpx.post(
        f"{server.base}/api1/collections/{collection}/objects/",
        json={"objects": [make_indicator(1)]},
        headers=key.post,
        timeout=30,
    )
    assert answer.status_code == 202
    for stream in streams:
        assert stream.objects(1, timeout=10)[0][0]["name"] == "Residential proxy exit 1"


def stream_reads(base: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("ix_stream_reads_total{"):
            label, _, value = line.partition("} ")
            found[label.split('"')[1]] = float(value)
    return found


def test_subscribers_of_one_clearance_share_the_read_a_commit_causes(idle_server: tuple[LiveServer, str]) -> None:
    server, url = idle_server
    with session_scope(make_sessionmaker(engine_for(url))) as session:
        collection = make_collection(session)
        key: Key = make_key(session, "sharer", clearance="red", read=[collection], write=[collection])
    stream_url = f"{server.base}/api/v1/collections/{collection}/stream"
    with ExitStack() as stack:
        streams = [stack.enter_context(subscribe(stream_url, key.basic)) for _ in range(SUBSCRIBERS)]
        for stream in streams:
            stream.next(timeout=10, skip_heartbeats=False)
        time.sleep(1.0)  # their first reads are done
        before = stream_reads(server.base)
        _commit_one_and_see_it_delivered(server, collection, key, streams)
        after = stream_reads(server.base)
    own = after.get("own", 0) - before.get("own", 0)
    shared = after.get("shared", 0) - before.get("shared", 0)
    assert own + shared >= SUBSCRIBERS
    assert own <= SUBSCRIBERS // 4, (own, shared)  # one read per wake-up, not one per subscriber
