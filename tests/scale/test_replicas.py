"""Read replicas against a real streaming replica (``pg_basebackup -R`` of a throwaway primary): polls read
there, read-your-writes through ``X-IX-LSN``, keyset paging exact on a lagging replica, a replica that lags
too far or stops (mid-poll) is out of rotation and back in when healthy, and a key revoked on the primary is
refused at once even while the replica has not replayed the revocation."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.services import services_of
from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker
from indicator_exchange.store.replicas import LSN_HEADER
from tests.conftest import make_settings
from tests.fixtures.factories import envelope, make_indicator
from tests.fixtures.postgres import Cluster, cluster
from tests.fixtures.scale import Replica, database_on, wait_replayed
from tests.scale.conftest import Feed, make_feed

pytestmark = pytest.mark.timeout(300)


@dataclass
class Pair:
    primary: Cluster
    replica: Replica
    primary_url: str
    replica_url: str


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with cluster() as primary:
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ix")
        primary_url = database_on(primary, "ix")
        migrate.upgrade(primary_url)
        replica = Replica(primary)
        try:
            replica.start()
            yield Pair(primary, replica, primary_url, database_on(replica, "ix"))
        finally:
            replica.remove()


def _replay(pair: Pair, *, paused: bool) -> None:
    with psycopg.connect(pair.replica_url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


@pytest.fixture
def feed(pair: Pair, request: pytest.FixtureRequest) -> Feed:
    engine = make_engine(pair.primary_url, pool_size=1)
    with make_sessionmaker(engine)() as session:
        made = make_feed(session, request.node.name[:40])
    engine.dispose()
    wait_replayed(pair.primary_url, pair.replica_url)
    return made


@pytest.fixture
def client(pair: Pair) -> Iterator[TestClient]:
    _replay(pair, paused=False)
    settings = make_settings(
        pair.primary_url,
        read_replica_urls=pair.replica_url,
        replica_max_lag_seconds=2.0,
        replica_wait_seconds=0.5,
        replica_check_seconds=0.2,
        statistics_interval_seconds=0,
    )
    with TestClient(create_app(settings)) as made:
        yield made
    _replay(pair, paused=False)


def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def _post(client: TestClient, feed: Feed, first: int, count: int) -> str:
    answer = client.post(
        feed.url, json=envelope(*(make_indicator(n) for n in range(first, first + count))), headers=feed.writer.post
    )
    assert answer.status_code == 202, answer.text
    return answer.headers[LSN_HEADER]


def _ids(client: TestClient, feed: Feed, **headers: str) -> list[str]:
    answer = client.get(feed.url, headers={**feed.reader.basic, **headers})
    assert answer.status_code == 200, answer.text
    return [o["id"] for o in answer.json().get("objects", [])]


def _in_rotation(client: TestClient) -> bool:
    replicas = services_of(client.app).replicas
    assert replicas is not None
    return bool(replicas.healthy())


def test_polls_read_from_the_replica_and_read_your_writes_waits_or_goes_to_the_primary(
    client: TestClient, feed: Feed, pair: Pair
) -> None:
    lsn = _post(client, feed, 0, 10)
    _until(lambda: len(_ids(client, feed, **{LSN_HEADER: lsn})) == 10)
    _replay(pair, paused=True)
    lsn = _post(client, feed, 10, 5)
    assert len(_ids(client, feed)) == 10, "without X-IX-LSN the poll is the (paused) replica's"
    assert len(_ids(client, feed, **{LSN_HEADER: lsn})) == 15, "with it, the primary once the wait ran out"
    _replay(pair, paused=False)
    _until(lambda: len(_ids(client, feed)) == 15)
    assert client.get(feed.url, headers={**feed.reader.basic, LSN_HEADER: "not-an-lsn"}).status_code == 400


def test_keyset_paging_on_a_lagging_replica_returns_a_prefix_never_a_hole(
    client: TestClient, feed: Feed, pair: Pair
) -> None:
    lsn = _post(client, feed, 0, 40)
    _until(lambda: len(_ids(client, feed, **{LSN_HEADER: lsn})) == 40)
    _replay(pair, paused=True)
    _post(client, feed, 40, 40)
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 7}
    while True:
        body = client.get(feed.url, params=params, headers=feed.reader.basic).json()
        seen.extend(o["id"] for o in body.get("objects", []))
        if not body.get("more"):
            break
        params = {"limit": 7, "next": body["next"]}
    # 40 from the paused replica; more only if it left the rotation mid-way (a loaded machine: the lag passed
    # its bound) and the primary served the rest. Either way a prefix of the commit order: no hole, no repeat.
    everything = [make_indicator(n)["id"] for n in range(80)]
    assert len(seen) >= 40
    assert seen == everything[: len(seen)]


def test_a_replica_lagging_too_far_leaves_the_rotation_and_comes_back(
    client: TestClient, feed: Feed, pair: Pair
) -> None:
    assert _in_rotation(client)
    _replay(pair, paused=True)
    _post(client, feed, 0, 5)
    time.sleep(2.5)
    _post(client, feed, 5, 5)  # WAL the paused replica receives but does not replay: its lag grows
    _until(lambda: not _in_rotation(client))
    assert len(_ids(client, feed)) == 10, "out of rotation: the primary answers"
    _replay(pair, paused=False)
    _until(lambda: _in_rotation(client))
    assert len(_ids(client, feed)) == 10


def test_a_key_revoked_on_the_primary_is_refused_while_the_replica_lags(
    client: TestClient, feed: Feed, pair: Pair
) -> None:
    assert client.get(feed.url, headers=feed.reader.basic).status_code == 200  # cached on this worker
    _replay(pair, paused=True)
    engine = make_engine(pair.primary_url, pool_size=1)
    session: Session
    with make_sessionmaker(engine)() as session:
        admin.revoke_key(session, key_id=feed.reader.key_id)
        session.commit()
    engine.dispose()
    assert client.get(feed.url, headers=feed.reader.basic).status_code == 401


def test_a_replica_stopped_mid_poll_loses_nothing(client: TestClient, feed: Feed, pair: Pair) -> None:
    lsn = _post(client, feed, 0, 60)
    _until(lambda: len(_ids(client, feed, **{LSN_HEADER: lsn})) == 60)
    body = client.get(feed.url, params={"limit": 10}, headers=feed.reader.basic).json()
    seen = [o["id"] for o in body["objects"]]
    pair.replica.stop("immediate")
    try:
        while body.get("more"):
            answer = client.get(feed.url, params={"limit": 10, "next": body["next"]}, headers=feed.reader.basic)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            seen.extend(o["id"] for o in body["objects"])
        assert seen == [make_indicator(n)["id"] for n in range(60)]
        assert not _in_rotation(client)
    finally:
        pair.replica.start()
    _until(lambda: _in_rotation(client), seconds=30)
    ready = client.get("/readyz").json()
    assert ready["replicas"][0]["in_rotation"] is True
