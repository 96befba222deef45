"""Per-key rate limits and daily object quotas: 429 with a TAXII error and Retry-After, then recovery."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.store import counters
from indicator_exchange.store.models import AuditEvent
from tests.conftest import make_settings
from tests.fixtures.clock import FakeClock
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url

MINUTE_START = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MINUTE_START.replace(second=1))


@pytest.fixture
def limited_client(db_url: str, clock: FakeClock) -> Iterator[TestClient]:
    """Server defaults: 5 requests per minute, 4 objects per day."""
    app = create_app(make_settings(db_url, default_requests_per_minute=5, default_objects_per_day=4), clock=clock)
    with TestClient(app) as client:
        yield client


def _get(client: TestClient, key: Key) -> int:
    return client.get("/api1/collections/", headers=key.basic).status_code


class TestRequestRate:
    def _partner(self, session: Session, *, rpm: int | None) -> Key:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        admin.update_principal(session, name="lab-a", requests_per_minute=rpm, objects_per_day=0)
        session.commit()
        return key

    def test_the_limit_triggers_with_a_taxii_error_and_retry_after(
        self, limited_client: TestClient, session: Session
    ) -> None:
        key = self._partner(session, rpm=3)
        assert [_get(limited_client, key) for _ in range(3)] == [200, 200, 200]
        refused = limited_client.get("/api1/collections/", headers=key.basic)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/taxii+json;version=2.1"
        assert refused.json()["http_status"] == "429"
        assert int(refused.headers["Retry-After"]) >= 1

    def test_waiting_retry_after_recovers(self, limited_client: TestClient, session: Session, clock: FakeClock) -> None:
        key = self._partner(session, rpm=3)
        for _ in range(3):
            _get(limited_client, key)
        refused = limited_client.get("/api1/collections/", headers=key.basic)
        wait = int(refused.headers["Retry-After"])
        clock.advance(wait - 2)
        assert _get(limited_client, key) == 429  # too early (and it counts)
        retry = limited_client.get("/api1/collections/", headers=key.basic)
        clock.advance(int(retry.headers["Retry-After"]))
        assert _get(limited_client, key) == 200

    def test_no_burst_of_twice_the_limit_at_a_window_boundary(
        self, limited_client: TestClient, session: Session, clock: FakeClock
    ) -> None:
        key = self._partner(session, rpm=4)
        clock.now = MINUTE_START.replace(second=58)
        assert [_get(limited_client, key) for _ in range(4)] == [200] * 4
        clock.now = MINUTE_START.replace(minute=1, second=2)  # a new fixed window, but 4 requests 4 s ago
        assert _get(limited_client, key) == 429

    def test_the_limit_is_per_key(self, limited_client: TestClient, session: Session) -> None:
        key = self._partner(session, rpm=2)
        created = admin.create_key(session, principal="lab-a")
        session.commit()
        other = Key("lab-a", str(created["key_id"]), str(created["secret"]))
        assert [_get(limited_client, key) for _ in range(3)] == [200, 200, 429]
        assert _get(limited_client, other) == 200

    def test_null_takes_the_server_default(self, limited_client: TestClient, session: Session) -> None:
        key = self._partner(session, rpm=None)
        assert [_get(limited_client, key) for _ in range(6)] == [200] * 5 + [429]

    def test_zero_is_unlimited(self, limited_client: TestClient, session: Session) -> None:
        key = self._partner(session, rpm=0)
        assert {_get(limited_client, key) for _ in range(12)} == {200}

    def test_refusals_are_audited(self, limited_client: TestClient, session: Session) -> None:
        key = self._partner(session, rpm=1)
        _get(limited_client, key)
        _get(limited_client, key)
        events = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
        assert [(e.status_code, e.outcome, e.key_id) for e in events] == [
            (200, "ok", key.key_id),
            (429, "rate-limited", key.key_id),
        ]


class TestObjectQuota:
    def _world(self, session: Session, client: TestClient, *, per_day: int | None) -> tuple[Key, str]:
        collection = make_collection(session)
        reader = make_key(session, "reader", read=[collection])
        writer = make_key(session, "writer", write=[collection])
        admin.update_principal(session, name="reader", requests_per_minute=0, objects_per_day=per_day)
        admin.update_principal(session, name="writer", requests_per_minute=0, objects_per_day=0)
        session.commit()
        posted = client.post(
            objects_url(collection), headers=writer.post, json=envelope(*(make_indicator(n) for n in range(6)))
        )
        assert posted.json()["success_count"] == 6
        return reader, objects_url(collection)

    def test_pages_are_clamped_to_the_quota_left_then_refused(
        self, limited_client: TestClient, session: Session
    ) -> None:
        reader, url = self._world(session, limited_client, per_day=None)  # server default: 4
        first = limited_client.get(url, params={"limit": 3}, headers=reader.basic).json()
        assert len(first["objects"]) == 3
        second = limited_client.get(url, params={"next": first["next"]}, headers=reader.basic).json()
        assert len(second["objects"]) == 1  # only one object of the quota was left
        assert second["more"] is True
        refused = limited_client.get(url, params={"next": second["next"]}, headers=reader.basic)
        assert refused.status_code == 429
        assert "quota" in refused.json()["description"]

    def test_the_quota_recovers_the_next_utc_day(
        self, limited_client: TestClient, session: Session, clock: FakeClock
    ) -> None:
        reader, url = self._world(session, limited_client, per_day=2)
        assert len(limited_client.get(url, headers=reader.basic).json()["objects"]) == 2
        refused = limited_client.get(url, headers=reader.basic)
        assert refused.status_code == 429
        clock.advance(int(refused.headers["Retry-After"]))
        assert len(limited_client.get(url, headers=reader.basic).json()["objects"]) == 2

    def test_a_post_larger_than_the_quota_left_is_refused(self, limited_client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        writer = make_key(session, "writer", write=[collection])
        admin.update_principal(session, name="writer", requests_per_minute=0, objects_per_day=3)
        session.commit()
        url = objects_url(collection)
        big = limited_client.post(url, headers=writer.post, json=envelope(*(make_indicator(n) for n in range(4))))
        assert big.status_code == 429
        ok = limited_client.post(url, headers=writer.post, json=envelope(*(make_indicator(n) for n in range(3))))
        assert ok.status_code == 202
        assert limited_client.post(url, headers=writer.post, json=envelope(make_indicator(9))).status_code == 429


class TestCounters:
    def test_bump_counts_in_one_window_and_carries_the_previous_one(self, session: Session) -> None:
        assert counters.bump(session, key_id="k", scope="s", window_no=10).count == 1
        assert counters.bump(session, key_id="k", scope="s", window_no=10, amount=2).count == 3
        moved = counters.bump(session, key_id="k", scope="s", window_no=11)
        assert (moved.window_no, moved.count, moved.previous_count) == (11, 1, 3)
        skipped = counters.bump(session, key_id="k", scope="s", window_no=13)
        assert (skipped.window_no, skipped.count, skipped.previous_count) == (13, 1, 0)

    def test_a_counter_ahead_of_this_worker_keeps_its_window(self, session: Session) -> None:
        counters.bump(session, key_id="k", scope="s", window_no=20)
        behind = counters.bump(session, key_id="k", scope="s", window_no=19)
        assert (behind.window_no, behind.count) == (20, 2)

    def test_peek_reads_only_the_asked_window(self, session: Session) -> None:
        counters.bump(session, key_id="k", scope="s", window_no=5, amount=7)
        assert counters.peek(session, key_id="k", scope="s", window_no=5) == 7
        assert counters.peek(session, key_id="k", scope="s", window_no=6) == 0
