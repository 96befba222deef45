"""PostgreSQL restarted under load, on the fixtures' own throwaway cluster (never the shared server), with a
live `serve` and concurrent clients: every answer is a success or a 503 with Retry-After (no 500), every
object acknowledged before, during or after is stored, and every request has its audit row — those answered
while the database was away were spooled and written once it was back."""

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope
from indicator_exchange.store.models import AuditEvent, ObjectVersion
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url
from tests.fixtures.live_server import LiveServer, live_server
from tests.fixtures.postgres import Cluster, cluster, fresh_database

CLIENTS = 4
DOWN_SECONDS = 2.0


def _until(condition: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the load did not progress"
        time.sleep(0.2)


@pytest.fixture
def pg() -> Iterator[Cluster]:
    with cluster() as made:
        yield made


class Load:
    """Clients posting one new indicator at a time (retrying a 503 after its Retry-After) and polling."""

    def __init__(self, server: LiveServer, key: Key, collection: str) -> None:
        self.server, self.key, self.collection = server, key, collection
        self.statuses: Counter[int] = Counter()
        self.missing_retry_after = 0
        self.acknowledged: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[str] = []

    def _note(self, answer: httpx.Response) -> None:
        with self.lock:
            self.statuses[answer.status_code] += 1
            if answer.status_code == 503 and "retry-after" not in answer.headers:
                self.missing_retry_after += 1
            if answer.status_code >= 500 and answer.status_code != 503:
                self.errors.append(answer.text[:300])

    def client(self, number: int) -> None:
        n = number * 100_000
        with httpx.Client(base_url=self.server.base, timeout=30) as http:
            while not self.stop.is_set():
                n += 1
                indicator = make_indicator(n)
                while True:  # a 503 is retried: the object must end up stored
                    posted = http.post(self.collection, headers=self.key.post, json=envelope(indicator))
                    self._note(posted)
                    if posted.status_code != 503:
                        break
                    time.sleep(float(posted.headers.get("retry-after", "1")) / 4)
                if posted.status_code == 202 and posted.json().get("success_count") == 1:
                    with self.lock:
                        self.acknowledged.add(str(indicator["id"]))
                self._note(http.get(self.collection, headers=self.key.basic, params={"limit": 5}))


@pytest.mark.timeout(300)  # a cluster, a live server and a restart on 2 shared cores
def test_a_restart_under_load_is_only_503s_and_loses_nothing(pg: Cluster) -> None:
    url = fresh_database(pg.url, "ix_fault")
    migrate.upgrade(url)
    engine = make_engine(url, pool_size=1)
    with session_scope(make_sessionmaker(engine)) as session:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection], write=[collection])
    env = {"IX_AUTH_CACHE_SECONDS": "0"}  # every request authenticates: every request meets the outage
    with live_server(url, env=env) as server:
        load = Load(server, key, objects_url(collection))
        threads = [threading.Thread(target=load.client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        _until(lambda: len(load.acknowledged) >= CLIENTS)  # load is flowing (on 2 shared cores it may take a while)
        before = len(load.acknowledged)
        pg.stop("fast")  # "shutting down", then refused connections
        time.sleep(DOWN_SECONDS)
        pg.start()
        _until(lambda: len(load.acknowledged) >= before + CLIENTS)  # writes resumed
        load.stop.set()
        for thread in threads:
            thread.join(60)
        after = len(load.acknowledged)
        # One more request, then the audit writer's own pass: whatever was spooled is written.
        assert httpx.get(f"{server.base}/taxii2/", headers=key.basic).status_code == 200
        time.sleep(6)
        metrics = httpx.get(f"{server.base}/metrics").text

    assert load.errors == []
    assert set(load.statuses) <= {200, 202, 503}, load.statuses
    assert load.statuses[503] > 0, "the restart was not noticed: the test proves nothing"
    assert load.missing_retry_after == 0
    assert before > 0
    assert after > before  # writes resumed after the restart
    engine.dispose()
    engine = make_engine(url, pool_size=1)
    with session_scope(make_sessionmaker(engine)) as session:
        stored = set(session.execute(select(ObjectVersion.stix_id)).scalars())
        by_status = select(AuditEvent.status_code, func.count()).group_by(AuditEvent.status_code)
        audited: Counter[int] = Counter({int(status): int(count) for status, count in session.execute(by_status)})
    engine.dispose()
    assert load.acknowledged <= stored
    # Every request the clients made has its row (plus the final discovery request): none was lost.
    expected = load.statuses + Counter({200: 1})
    assert audited == expected, (audited, expected)
    assert "ix_audit_spool_written_total" in metrics
    assert "ix_audit_dropped_total 0.0" in metrics
