"""Many instances, one truth: two `serve` instances of two workers each on one PostgreSQL, behind a real
haproxy that sends every request to the next instance in turn. A `next` token, a rate-limit count, a revoked
key or grant, a changed default TLP, a status resource and the audit trail are the same whichever instance
answers; a page read ahead on one instance is never served stale after a write through the other."""

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.admin import service as admin
from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker
from indicator_exchange.store.models import AuditEvent
from tests.fixtures.factories import Key, envelope, make_indicator
from tests.fixtures.postgres import drop_database, fresh_database
from tests.fixtures.scale import Balancer, haproxy, instances
from tests.scale.conftest import Feed, make_feed, poll_all, post

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def database(pg_admin_url: str) -> Iterator[str]:
    name = f"ix_test_instances_{int(time.time() * 1000) % 10**9}"
    url = fresh_database(pg_admin_url, name)
    migrate.upgrade(url)
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="module")
def sessions(database: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database, pool_size=2)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def balancer(database: str) -> Iterator[Balancer]:
    # The failure throttle and the auth cache at their defaults: both are what must hold across instances.
    with instances(database, 2, workers=2) as servers, haproxy(servers) as made:
        yield made


@pytest.fixture
def client(balancer: Balancer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=balancer.base, timeout=30) as made:
        yield made


def _feed(sessions: sessionmaker[Session], name: str, **options: str) -> Feed:
    with sessions() as session:
        return make_feed(session, name, **options)


def _served_by(answers: list[httpx.Response]) -> set[str]:
    return {a.headers["x-ix-backend"] for a in answers}


def test_a_next_token_from_one_instance_is_valid_on_the_other(
    client: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    feed = _feed(sessions, "paging")
    post(client, feed, 0, 300)
    seen: list[str] = []
    backends: list[str] = []
    params: dict[str, str | int] = {"limit": 7}
    while True:
        answer = client.get(feed.url, params=params, headers=feed.reader.basic)
        assert answer.status_code == 200, answer.text
        backends.append(answer.headers["x-ix-backend"])
        body = answer.json()
        seen.extend(o["id"] for o in body["objects"])
        if not body.get("more"):
            break
        params = {"limit": 7, "next": body["next"]}
    assert len(seen) == 300
    assert len(set(seen)) == 300
    # Consecutive pages alternated between the instances: every token was redeemed on the other one.
    assert all(a != b for a, b in itertools.pairwise(backends))


def test_paging_while_writers_post_through_the_other_instance(
    balancer: Balancer, sessions: sessionmaker[Session]
) -> None:
    feed = _feed(sessions, "busy")
    with httpx.Client(base_url=balancer.base, timeout=30) as setup:
        post(setup, feed, 0, 200)
    stop = threading.Event()
    posted: list[int] = []

    def write() -> None:
        n = 10_000
        with httpx.Client(base_url=balancer.base, timeout=30) as writer:
            while not stop.is_set():
                post(writer, feed, n, 5)
                posted.extend(range(n, n + 5))
                n += 5

    thread = threading.Thread(target=write)
    thread.start()
    try:
        with httpx.Client(base_url=balancer.base, timeout=30) as reader:
            first_pass = poll_all(reader, feed, limit=13)
    finally:
        stop.set()
        thread.join()
    assert len(first_pass) == len(set(first_pass)), "an object was served twice"
    with httpx.Client(base_url=balancer.base, timeout=30) as reader:
        everything = poll_all(reader, feed, limit=1000)
    assert len(everything) == 200 + len(posted)
    assert set(first_pass) <= set(everything)
    expected_first = {make_indicator(n)["id"] for n in range(200)}
    assert expected_first <= set(first_pass), "an object that existed before the poll began was skipped"


def _boundary_safe() -> None:
    """Rate windows are UTC minutes: do not straddle one (the previous minute's weight would admit one more)."""
    into = time.time() % 60
    if into > 50:
        time.sleep(61 - into)


def test_a_rate_limit_counts_requests_on_every_instance(client: httpx.Client, sessions: sessionmaker[Session]) -> None:
    feed = _feed(sessions, "limited")
    with sessions() as session:
        admin.update_principal(session, name=feed.reader.principal, requests_per_minute=10)
        session.commit()
    _boundary_safe()
    answers = [client.get(feed.url, headers=feed.reader.basic) for _ in range(20)]
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: 10, 429: 10}
    assert _served_by([a for a in answers if a.status_code == 200]) == {"s0", "s1"}
    assert _served_by([a for a in answers if a.status_code == 429]) == {"s0", "s1"}
    assert all("retry-after" in a.headers for a in answers if a.status_code == 429)


def test_a_daily_quota_counts_objects_on_every_instance(client: httpx.Client, sessions: sessionmaker[Session]) -> None:
    feed = _feed(sessions, "quota")
    post(client, feed, 0, 100)
    with sessions() as session:
        admin.update_principal(session, name=feed.reader.principal, objects_per_day=25)
        session.commit()
    served = 0
    params: dict[str, str | int] = {"limit": 10}
    for _ in range(10):
        answer = client.get(feed.url, params=params, headers=feed.reader.basic)
        if answer.status_code == 429:
            break
        assert answer.status_code == 200, answer.text
        body = answer.json()
        served += len(body.get("objects", []))
        if not body.get("more"):
            break
        params = {"limit": 10, "next": body["next"]}
    assert served == 25


def _warm(client: httpx.Client, feed: Feed, key: Key) -> None:
    """Enough requests that every worker of both instances has authenticated (and cached) the key."""
    for _ in range(12):
        with httpx.Client(base_url=client.base_url, timeout=30) as fresh:  # a new connection: any worker
            assert fresh.get(feed.url, headers=key.basic).status_code == 200


def _every_worker(client: httpx.Client, feed: Feed, key: Key) -> Counter[int]:
    statuses: Counter[int] = Counter()
    for _ in range(12):
        with httpx.Client(base_url=client.base_url, timeout=30) as fresh:
            statuses[fresh.get(feed.url, headers=key.basic).status_code] += 1
    return statuses


def test_a_revoked_key_is_refused_at_once_by_every_instance(
    client: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    feed = _feed(sessions, "revoked")
    _warm(client, feed, feed.reader)
    with sessions() as session:
        admin.revoke_key(session, key_id=feed.reader.key_id)
        session.commit()
    assert _every_worker(client, feed, feed.reader) == {401: 12}


def test_a_removed_grant_applies_at_once_on_every_instance(
    client: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    feed = _feed(sessions, "ungranted")
    _warm(client, feed, feed.reader)
    with sessions() as session:
        admin.revoke_grant(session, principal=feed.reader.principal, collection_id=feed.collection)
        session.commit()
    statuses = _every_worker(client, feed, feed.reader)
    assert 200 not in statuses, statuses


def test_a_changed_default_tlp_applies_at_once_on_every_instance(
    client: httpx.Client, sessions: sessionmaker[Session]
) -> None:
    feed = _feed(sessions, "retlp", reader_clearance="green", default_tlp="green")
    unmarked = [make_indicator(n, tlp=None) for n in range(5)]
    assert client.post(feed.url, json=envelope(*unmarked), headers=feed.writer.post).status_code == 202
    for _ in range(12):
        with httpx.Client(base_url=client.base_url, timeout=30) as fresh:
            assert len(fresh.get(feed.url, headers=feed.reader.basic).json().get("objects", [])) == 5
    with sessions() as session:
        session.execute(text("UPDATE collection SET default_tlp = 2 WHERE id = :id"), {"id": feed.collection})
        session.commit()
    for _ in range(12):
        with httpx.Client(base_url=client.base_url, timeout=30) as fresh:
            answer = fresh.get(feed.url, headers=feed.reader.basic)
            assert answer.status_code == 200
            assert answer.json().get("objects", []) == [], answer.headers["x-ix-backend"]


def test_status_and_audit_are_visible_from_any_instance(client: httpx.Client, sessions: sessionmaker[Session]) -> None:
    feed = _feed(sessions, "status")
    status = post(client, feed, 0, 3)
    answers = [client.get(f"/api1/status/{status['id']}/", headers=feed.writer.basic) for _ in range(4)]
    assert {a.status_code for a in answers} == {200}
    assert _served_by(answers) == {"s0", "s1"}
    deadline = time.monotonic() + 10  # audit rows are written just after the response
    while True:
        with sessions() as session:
            audited = session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.path.like(f"/api1/status/{status['id']}%"))
            )
        if audited == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert audited == 4


def test_read_ahead_on_one_instance_is_never_stale_after_a_write_through_the_other(
    balancer: Balancer, sessions: sessionmaker[Session]
) -> None:
    """The reader keeps one connection to instance 0 (one worker, which reads page 2 ahead while the reader
    takes page 1); the writer posts a new version of an object on page 2 through instance 1 in between."""
    feed = _feed(sessions, "fresh")
    first, second = balancer.servers
    with httpx.Client(base_url=second.base, timeout=30) as writer:
        post(writer, feed, 0, 100)
    changed = make_indicator(60, modified="2026-03-01T00:00:00.000Z")
    with httpx.Client(base_url=first.base, timeout=30) as reader:
        page = reader.get(feed.url, params={"limit": 50}, headers=feed.reader.basic).json()
        time.sleep(0.5)  # page 2 is being read ahead on instance 0
        with httpx.Client(base_url=second.base, timeout=30) as writer:
            answer = writer.post(feed.url, json=envelope(changed), headers=feed.writer.post)
            assert answer.status_code == 202
            assert answer.json()["success_count"] == 1
        seen = list(page["objects"])
        while page.get("more"):  # the same limit: a page read ahead is the next page of the same poll
            page = reader.get(feed.url, params={"limit": 50, "next": page["next"]}, headers=feed.reader.basic).json()
            seen.extend(page["objects"])
    versions = [o["modified"] for o in seen if o["id"] == changed["id"]]
    assert versions[-1] == "2026-03-01T00:00:00.000Z", versions
    assert "2026-02-24T12:00:00.000Z" not in versions, "page 2 was served as read ahead, before the write"
