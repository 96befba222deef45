"""The independent check of issue 19, rehearsed end to end with the real programs: two `serve` instances (two
workers each) behind haproxy on one PostgreSQL with a streaming replica. A reader pages through a collection
through the balancer while a writer posts new objects, newer versions and deletes through the other
instance; mid-run a key is revoked, a grant removed, a default TLP raised, the replica is stopped and
started again, and later paused behind the writer for a while. Lost, duplicated and stale objects are
counted (all must be 0), and /metrics and /readyz read.

Stale, as counted here: an object version served by a response to a request sent after a newer version of
the object, or its deletion, had been acknowledged; any object served to a revoked key or a removed grant
after the change; an unmarked object served above the reader's clearance after the default TLP was raised.
"""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.admin import service as admin
from indicator_exchange.store.engine import make_engine, make_sessionmaker
from tests.fixtures.factories import envelope, make_indicator
from tests.fixtures.scale import Balancer, haproxy, instances, wait_replayed
from tests.scale.conftest import Feed, Pair, make_feed, post

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BASE_VERSION = "2026-02-24T12:00:00.000Z"


@pytest.fixture(scope="module")
def sessions(pair: Pair) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(pair.primary_url, pool_size=2)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def balancer(pair: Pair) -> Iterator[Balancer]:
    env = {
        "IX_READ_REPLICA_URLS": pair.replica_url,
        "IX_REPLICA_MAX_LAG_SECONDS": "5",
        "IX_REPLICA_CHECK_SECONDS": "0.2",
        "IX_REPLICA_WAIT_SECONDS": "0.5",
    }
    with instances(pair.primary_url, 2, workers=2, env=env) as servers, haproxy(servers) as made:
        yield made


@dataclass
class Ledger:
    """What the writer had acknowledged, and when (monotonic): the truth polls are checked against."""

    latest: dict[str, str] = field(default_factory=dict)  # id -> latest acknowledged version (modified)
    superseded: dict[tuple[str, str], float] = field(default_factory=dict)  # (id, version) -> when superseded
    deleted: dict[str, float] = field(default_factory=dict)  # id -> when its deletion was acknowledged
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stored(self, stix_id: str, version: str) -> None:
        with self.lock:
            previous = self.latest.get(stix_id)
            if previous is not None and previous < version:
                self.superseded[(stix_id, previous)] = time.monotonic()
            if previous is None or previous < version:
                self.latest[stix_id] = version

    def removed(self, stix_id: str) -> None:
        with self.lock:
            self.deleted[stix_id] = time.monotonic()
            self.latest.pop(stix_id, None)

    def stale(self, objects: list[dict[str, str]], sent: float) -> list[str]:
        """The objects of an answer to a request sent at ``sent`` that were already superseded or deleted."""
        with self.lock:
            return [
                f"{o['id']}@{o['modified']}"
                for o in objects
                if self.deleted.get(o["id"], sent) < sent or self.superseded.get((o["id"], o["modified"]), sent) < sent
            ]


def _version(k: int) -> str:
    return f"2026-03-01T{k // 3600 % 24:02d}:{k // 60 % 60:02d}:{k % 60:02d}.000Z"


def _write(base: str, feed: Feed, ledger: Ledger, stop: threading.Event, errors: list[str]) -> None:
    """New objects, newer versions of earlier ones and deletes, through one instance only."""
    n, k, turn = 1000, 1, 0
    with httpx.Client(base_url=base, timeout=60) as writer:
        while not stop.is_set():
            turn += 1
            batch = [make_indicator(i) for i in range(n, n + 5)]
            if turn % 2 == 0:  # a newer version of an object stored before
                live = sorted(ledger.latest)
                batch.append(make_indicator(0, id=live[turn * 7 % len(live)], modified=_version(k)))
                k += 1
            answer = writer.post(feed.url, json=envelope(*batch), headers=feed.writer.post)
            if answer.status_code != 202 or answer.json()["success_count"] != len(batch):
                errors.append(f"post: {answer.status_code} {answer.text[:300]}")
                return
            for obj in batch:
                ledger.stored(str(obj["id"]), str(obj["modified"]))
            n += 5
            if turn % 3 == 0:  # a delete
                live = sorted(ledger.latest)
                gone = live[turn * 13 % len(live)]
                answer = writer.delete(f"{feed.url}{gone}/", headers=feed.writer.basic)
                if answer.status_code != 200:
                    errors.append(f"delete: {answer.status_code} {answer.text[:300]}")
                    return
                ledger.removed(gone)


def _replay(pair: Pair, *, paused: bool) -> None:
    with psycopg.connect(pair.replica_url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def _every_worker(base: str, url: str, headers: dict[str, str]) -> list[httpx.Response]:
    """One request on each of 8 fresh connections: every worker of both instances answers some."""
    answers = []
    for _ in range(8):
        with httpx.Client(base_url=base, timeout=60) as fresh:
            answers.append(fresh.get(url, headers=headers))
    return answers


def _metric(base: str, name: str, **labels: str) -> float:
    scraped = httpx.get(f"{base}/metrics", timeout=60)
    assert scraped.status_code == 200, scraped.text
    total = 0.0
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_two_instances_a_replica_writers_and_revocations_lose_duplicate_and_stale_nothing(
    balancer: Balancer, sessions: sessionmaker[Session], pair: Pair
) -> None:
    with sessions() as session:
        feed = make_feed(session, "checked")
        revoked = make_feed(session, "revoked-key")
        ungranted = make_feed(session, "removed-grant")
        retlp = make_feed(session, "raised-tlp", reader_clearance="green", default_tlp="green")
    ledger = Ledger()
    second = balancer.servers[1].base
    with httpx.Client(base_url=second, timeout=60) as setup:
        for first in range(0, 300, 100):
            post(setup, feed, first, 100)
        for n in range(300):
            ledger.stored(str(make_indicator(n)["id"]), BASE_VERSION)
        post(setup, revoked, 0, 20)
        post(setup, ungranted, 0, 20)
        unmarked = envelope(*(make_indicator(n, tlp=None) for n in range(20)))
        assert setup.post(retlp.url, json=unmarked, headers=retlp.writer.post).status_code == 202
    wait_replayed(pair.primary_url, pair.replica_url)
    existed = set(ledger.latest)
    for other in (revoked, ungranted, retlp):  # cached by every worker before the changes
        assert {a.status_code for a in _every_worker(balancer.base, other.url, other.reader.basic)} == {200}
    replica_reads = _metric(balancer.base, "ix_replica_reads_total", target="replica")

    stop, errors = threading.Event(), list[str]()
    writer = threading.Thread(target=_write, args=(second, feed, ledger, stop, errors))
    writer.start()
    served: list[tuple[str, str]] = []
    stale: list[str] = []
    refused_late: list[str] = []
    pages = 0
    params: dict[str, str | int] = {"limit": 13}
    try:
        with httpx.Client(base_url=balancer.base, timeout=60) as reader:
            while True:
                sent = time.monotonic()
                answer = reader.get(feed.url, params=params, headers=feed.reader.basic)
                assert answer.status_code == 200, answer.text
                body = answer.json()
                objects = body.get("objects", [])
                served.extend((o["id"], o["modified"]) for o in objects)
                stale.extend(ledger.stale(objects, sent))
                pages += 1
                if pages == 4:
                    pair.replica.stop("immediate")  # mid-poll: the next pages must come from the primary
                elif pages == 8:
                    pair.replica.start()
                elif pages == 12:
                    with sessions() as session:
                        admin.revoke_key(session, key_id=revoked.reader.key_id)
                        admin.revoke_grant(
                            session, principal=ungranted.reader.principal, collection_id=ungranted.collection
                        )
                        session.execute(
                            text("UPDATE collection SET default_tlp = 2 WHERE id = :id"), {"id": retlp.collection}
                        )
                        session.commit()
                    for a in _every_worker(balancer.base, revoked.url, revoked.reader.basic):
                        if a.status_code != 401:
                            refused_late.append(f"revoked key: {a.status_code} {a.headers['x-ix-backend']}")
                    for a in _every_worker(balancer.base, ungranted.url, ungranted.reader.basic):
                        if a.status_code != 404:
                            refused_late.append(f"removed grant: {a.status_code} {a.headers['x-ix-backend']}")
                    for a in _every_worker(balancer.base, retlp.url, retlp.reader.basic):
                        if a.status_code != 200 or a.json().get("objects"):
                            refused_late.append(f"raised default TLP: {a.status_code} {a.headers['x-ix-backend']}")
                elif pages == 14:
                    _replay(pair, paused=True)  # a lagging replica (in rotation until it lags 5 s)
                elif pages == 22:
                    _replay(pair, paused=False)
                elif pages == 30:
                    stop.set()  # let the pass reach the end
                if not body.get("more"):
                    break
                params = {"limit": 13, "next": body["next"]}
    finally:
        stop.set()
        writer.join()
        _replay(pair, paused=False)
    assert not errors, errors
    assert pages > 30, "the pass ended before the writer stopped: too few pages to prove anything"

    # One pass while writing: nothing twice, nothing that existed (and stayed) before it began skipped.
    duplicated = len(served) - len(set(served))
    seen_ids = {stix_id for stix_id, _ in served}
    lost = sorted((existed - set(ledger.deleted)) - seen_ids)
    # Then a full read once everything has settled: exactly what the writer's ledger says.
    wait_replayed(pair.primary_url, pair.replica_url)
    final: dict[str, str] = {}
    params = {"limit": 1000}
    with httpx.Client(base_url=balancer.base, timeout=60) as reader:
        while True:
            body = reader.get(feed.url, params=params, headers=feed.reader.basic).json()
            for obj in body.get("objects", []):
                assert obj["id"] not in final, f"{obj['id']} twice in the final read"
                final[obj["id"]] = obj["modified"]
            if not body.get("more"):
                break
            params = {"limit": 1000, "next": body["next"]}
    lost += sorted(set(ledger.latest) - set(final))
    stale += [f"{i}@{v} (final)" for i, v in final.items() if ledger.latest.get(i) != v]
    assert (len(lost), duplicated, len(stale), refused_late) == (0, 0, 0, []), (lost[:5], stale[:5], refused_late)
    assert ledger.deleted, "the writer deleted nothing: the check proved less than it claims"

    # Operable: the replica served polls and is back in rotation; /readyz says ready, with the replica.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # each scrape is one instance's (the lowest of its workers' gauges)
        if min(_metric(balancer.base, "ix_replica_in_rotation") for _ in range(2)) == 1:
            break
        time.sleep(0.5)
    assert min(_metric(balancer.base, "ix_replica_in_rotation") for _ in range(2)) == 1
    assert _metric(balancer.base, "ix_replica_reads_total", target="replica") > replica_reads
    assert _metric(balancer.base, "ix_replica_reads_total", target="primary") > 0  # while it was down
    for _ in range(2):  # one answer from each instance
        ready = httpx.get(f"{balancer.base}/readyz", timeout=60)
        assert ready.status_code == 200, ready.text
        assert ready.json()["replicas"][0]["in_rotation"] is True
