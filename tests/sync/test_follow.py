"""``sync --follow``: against this server's stream, a long poll, medallion (polling), across kill -9 and a
PostgreSQL restart; every object stored once (``local_versions`` fails on a duplicate)."""

import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker
from indicator_exchange.sync import follow as live_follow
from indicator_exchange.sync import service as sync
from tests.conftest import slow_on
from tests.fixtures.factories import make_indicator
from tests.fixtures.live_server import IX, live_server
from tests.fixtures.peers import (
    FAST_RETRY,
    MedallionServer,
    Partner,
    add_source,
    local_collection,
    local_versions,
    new_partner,
    source_row,
)
from tests.fixtures.postgres import Cluster, cluster, fresh_database


def until(condition: Callable[[], bool], seconds: float = 30.0) -> float:
    """Seconds until ``condition`` held (fails after ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


@contextmanager
def following(sessions: sessionmaker[Session], *, mode: str | None = None) -> Iterator[list[Any]]:
    events: list[Any] = []
    stop = threading.Event()
    follower = live_follow.Follower(sessions, "partner", stop=stop, report=events.append, retry=FAST_RETRY)
    follower.mode = mode
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        yield events
    finally:
        stop.set()
        thread.join(30)


def partner_source(sessions: sessionmaker[Session], partner: Partner, monkeypatch: pytest.MonkeyPatch) -> uuid.UUID:
    monkeypatch.setenv("PARTNER_SECRET", partner.secret)
    target = local_collection(sessions)
    add_source(
        sessions,
        url=partner.discovery_url,
        api_root=partner.api_root,
        collection=str(partner.collection_id),
        target=target,
        credentials="env:PARTNER_SECRET",
        max_tlp="red",
    )
    return target


def count(sessions: sessionmaker[Session], target: uuid.UUID) -> int:
    return len(local_versions(sessions, target))


class TestFollow:
    def test_streams_from_an_indicator_exchange_partner(
        self, sessions: sessionmaker[Session], partner: Partner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        target = partner_source(sessions, partner, monkeypatch)
        partner.post([make_indicator(n) for n in range(3)])
        with following(sessions) as events:
            until(lambda: count(sessions, target) == 3)
            partner.post([make_indicator(3)])
            took = until(lambda: count(sessions, target) == 4)
            status = sync.source_dict(source_row(sessions))["live"]
        assert took < 2.0
        assert {e.mode for e in events} == {"stream"}
        assert isinstance(status, dict)
        assert status["mode"] == "stream"
        assert status["connected"] is True
        assert status["lag_seconds"] == 0.0
        assert source_row(sessions).live_connected_at is None  # a clean stop says it is no longer connected

    def test_long_polls_with_prefer_wait(
        self, sessions: sessionmaker[Session], partner: Partner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        target = partner_source(sessions, partner, monkeypatch)
        with following(sessions, mode=live_follow.LONG_POLL) as events:
            time.sleep(1.0)  # the follower's poll is held now
            partner.post([make_indicator(1)])
            took = until(lambda: count(sessions, target) == 1)
            partner.post([make_indicator(2)])
            until(lambda: count(sessions, target) == 2)
        assert took < 2.0
        assert {e.mode for e in events} == {"long-poll"}

    def test_polls_medallion_adaptively(
        self, sessions: sessionmaker[Session], medallion: MedallionServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MEDALLION_SECRET", medallion.secret)
        collection = medallion.new_collection()
        target = local_collection(sessions)
        add_source(
            sessions,
            url=f"{medallion.base}/api1/",
            collection=collection,
            target=target,
            credentials="env:MEDALLION_SECRET",
            max_tlp="red",
        )
        medallion.post(collection, [make_indicator(n) for n in range(3)])
        with following(sessions) as events:
            until(lambda: count(sessions, target) == 3)
            medallion.post(collection, [make_indicator(3)])
            took = until(lambda: count(sessions, target) == 4)
        assert {e.mode for e in events} == {"poll"}
        assert took < 5.0  # the interval had backed off from 1 s to a few seconds, not to the source's 5 min


# --- a follower process, killed and restarted ---------------------------------------------------------


class Follower:
    def __init__(self, database_url: str, secret: str) -> None:
        self.env = dict(os.environ, IX_DATABASE_URL=database_url, PARTNER_SECRET=secret)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([IX, "sync", "--follow"], env=self.env, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def source_list(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            [IX, "admin", "source", "list", "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        listed: list[dict[str, Any]] = json.loads(out.stdout)
        return listed


def post_steadily(partner: Partner, total: int, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        for n in range(total):
            partner.post([make_indicator(10_000 + n)])
            if stop.wait(0.05):
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@slow_on("sqlite")  # PostgreSQL's run guards the default suite
@pytest.mark.timeout(300)
def test_kill_9_loses_and_duplicates_nothing(
    sessions: sessionmaker[Session], db_url: str, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = partner_source(sessions, partner, monkeypatch)
    follower = Follower(db_url, partner.secret)
    total = 60
    stop = threading.Event()
    writer = post_steadily(partner, total, stop)
    try:
        for _ in range(3):
            follower.start()
            time.sleep(random.uniform(1.5, 3.0))
            follower.kill()
        follower.start()
        writer.join(120)
        until(lambda: count(sessions, target) == total, seconds=60)
        listed = follower.source_list()
    finally:
        stop.set()
        follower.stop()
    assert count(sessions, target) == total
    assert source_row(sessions).objects_total == total  # no batch was counted (or stored) twice
    assert listed[0]["live"]["mode"] == "stream"


@pytest.fixture
def pg() -> Iterator[Cluster]:
    with cluster() as made:
        yield made


@pytest.mark.slow  # tests/edge/test_postgres_restart.py restarts PostgreSQL under the server in the default run
@pytest.mark.timeout(300)
def test_follows_across_a_postgresql_restart(pg: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both instances' databases on one throwaway cluster, restarted while objects flow: the partner's stream
    and the follower's own store go away together and come back."""
    partner_url, local_url = fresh_database(pg.url, "ix_follow_a"), fresh_database(pg.url, "ix_follow_b")
    migrate.upgrade(partner_url)
    migrate.upgrade(local_url)
    engine = make_engine(local_url)
    sessions = make_sessionmaker(engine)
    with live_server(partner_url) as server:
        partner = new_partner(server)
        target = partner_source(sessions, partner, monkeypatch)
        follower = Follower(local_url, partner.secret)
        follower.start()
        try:
            partner.post([make_indicator(n) for n in range(5)])
            until(lambda: count(sessions, target) == 5, seconds=60)
            pg.stop()
            time.sleep(2.0)
            pg.start()
            engine.dispose()

            def posted() -> bool:
                try:
                    partner.post([make_indicator(100)])
                    return True
                except AssertionError:  # a 503 while the partner's pool reconnects
                    return False

            until(posted, seconds=60)
            partner.post([make_indicator(n) for n in range(101, 105)])
            until(lambda: count(sessions, target) == 10, seconds=90)
        finally:
            follower.stop()
            engine.dispose()
