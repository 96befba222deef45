"""Rate limits and daily object quotas on the poll fast paths: direct dispatch (``taxii.direct``) and pages
served from read-ahead (``taxii.read_ahead``). The README says both apply there as anywhere; a page that
skips the router, or one that was read before the request came, must still be counted and refused."""

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.auth.limits import OBJECTS_SCOPE
from indicator_exchange.services import services_of
from indicator_exchange.store import counters
from indicator_exchange.store.models import AuditEvent
from indicator_exchange.store.read_ahead import ReadAhead
from indicator_exchange.taxii import direct
from tests.conftest import make_settings
from tests.fixtures.clock import FakeClock
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url
from tests.fixtures.live_server import live_server

START = datetime(2026, 11, 20, 12, 0, 1, tzinfo=UTC)
OBJECTS = 60
LIMIT = 10


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app_client(db_url: str, clock: FakeClock) -> Iterator[TestClient]:
    """The app with limits on (per principal, below) and read-ahead at its default (on, PostgreSQL)."""
    app = create_app(make_settings(db_url, default_requests_per_minute=0, default_objects_per_day=0), clock=clock)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def direct_polls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each poll that direct dispatch took (it authenticates and admits through this function)."""
    seen: list[str] = []
    original = direct.get_provisional_caller

    async def counting(request: Any, *args: Any) -> Any:
        seen.append(request.url.path)
        return await original(request, *args)

    monkeypatch.setattr(direct, "get_provisional_caller", counting)
    return seen


def _world(session: Session, client: TestClient, *, rpm: int, per_day: int) -> tuple[uuid.UUID, Key]:
    collection = make_collection(session)
    reader = make_key(session, "reader", read=[collection])
    writer = make_key(session, "writer", write=[collection])
    admin.update_principal(session, name="reader", requests_per_minute=rpm, objects_per_day=per_day)
    admin.update_principal(session, name="writer", requests_per_minute=0, objects_per_day=0)
    session.commit()
    posted = client.post(
        objects_url(collection), headers=writer.post, json=envelope(*(make_indicator(n) for n in range(OBJECTS)))
    )
    assert posted.json()["success_count"] == OBJECTS
    return collection, reader


def _poll(client: TestClient, collection: uuid.UUID, key: Key, **params: Any) -> Any:
    return client.get(objects_url(collection), headers=key.basic, params={"limit": LIMIT, **params})


def _assert_refused(response: Any, reason: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/taxii+json;version=2.1"
    assert response.json()["http_status"] == "429"
    assert reason in response.json()["description"]
    assert int(response.headers["Retry-After"]) >= 1


def _used_today(session: Session, key: Key, clock: FakeClock) -> int:
    session.rollback()
    return counters.peek(
        session, key_id=key.key_id, scope=OBJECTS_SCOPE, window_no=int(clock.now.timestamp() // 86_400)
    )


class TestDirectPolls:
    def test_the_rate_limit_applies_and_refusals_are_audited(
        self, app_client: TestClient, session: Session, direct_polls: list[str]
    ) -> None:
        collection, reader = _world(session, app_client, rpm=3, per_day=0)
        assert [_poll(app_client, collection, reader).status_code for _ in range(3)] == [200] * 3
        _assert_refused(_poll(app_client, collection, reader), "requests per minute")
        assert direct_polls == [objects_url(collection)] * 4  # every one of them went direct
        session.rollback()
        outcomes = session.execute(
            select(AuditEvent.outcome).where(AuditEvent.key_id == reader.key_id).order_by(AuditEvent.id)
        ).scalars()
        assert list(outcomes) == ["ok"] * 3 + ["rate-limited"]

    def test_the_quota_clamps_then_refuses(
        self, app_client: TestClient, session: Session, clock: FakeClock, direct_polls: list[str]
    ) -> None:
        collection, reader = _world(session, app_client, rpm=0, per_day=15)
        first = _poll(app_client, collection, reader).json()
        second = _poll(app_client, collection, reader, next=first["next"]).json()
        assert (len(first["objects"]), len(second["objects"])) == (LIMIT, 5)
        _assert_refused(_poll(app_client, collection, reader, next=second["next"]), "quota")
        assert len(direct_polls) == 3
        assert _used_today(session, reader, clock) == 15


def _served(client: TestClient) -> int:
    read_ahead: ReadAhead = services_of(client.app).read_ahead
    read_ahead.settle()
    return read_ahead.served


def _next_pages(client: TestClient, collection: uuid.UUID, key: Key) -> Callable[[], Any]:
    """A poll's pages one call at a time, following ``next``; each call first lets read-ahead finish."""
    cursor: dict[str, str] = {}

    def page() -> Any:
        _served(client)
        response = _poll(client, collection, key, **cursor)
        if response.status_code == 200:
            cursor["next"] = response.json()["next"]
        return response

    return page


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
class TestReadAhead:
    def test_a_page_read_ahead_counts_against_the_rate_limit(
        self, app_client: TestClient, session: Session, clock: FakeClock
    ) -> None:
        collection, reader = _world(session, app_client, rpm=4, per_day=0)
        assert _poll(app_client, collection, reader).status_code == 200  # warms the caches: polls read ahead
        page = _next_pages(app_client, collection, reader)
        assert page().status_code == 200  # page 1; page 2 is read ahead
        before = _served(app_client)
        assert [page().status_code for _ in range(2)] == [200, 200]  # pages 2 and 3, from read-ahead
        assert _served(app_client) == before + 2
        refused = page()  # page 4 is read ahead and ready, but this is the key's fifth request this minute
        _assert_refused(refused, "requests per minute")
        assert _served(app_client) == before + 2
        clock.advance(int(refused.headers["Retry-After"]))
        assert [o["id"] for o in page().json()["objects"]] == [make_indicator(n)["id"] for n in range(30, 40)]

    def test_a_page_read_ahead_counts_against_the_quota(
        self, app_client: TestClient, session: Session, clock: FakeClock
    ) -> None:
        collection, reader = _world(session, app_client, rpm=0, per_day=35)
        assert _poll(app_client, collection, reader).status_code == 200  # warm-up: 10 of the 35
        page = _next_pages(app_client, collection, reader)
        assert len(page().json()["objects"]) == LIMIT  # 20 used; page 2 is read ahead
        before = _served(app_client)
        assert len(page().json()["objects"]) == LIMIT  # from read-ahead: 30 used
        assert _served(app_client) == before + 1
        assert _used_today(session, reader, clock) == 30
        assert len(page().json()["objects"]) == 5  # clamped to what is left, not the 10 read ahead
        _assert_refused(page(), "quota")
        assert _used_today(session, reader, clock) == 35


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_limits_hold_over_http_against_serve(db_url: str, session: Session) -> None:
    """The same, over real HTTP against ``serve`` (direct dispatch, read-ahead on): a poll that follows
    ``next`` is refused at the rate limit and at the end of the quota, with Retry-After."""
    collection = make_collection(session)
    fast = make_key(session, "fast", read=[collection])
    thrifty = make_key(session, "thrifty", read=[collection])
    admin.update_principal(session, name="fast", requests_per_minute=4, objects_per_day=0)
    admin.update_principal(session, name="thrifty", requests_per_minute=0, objects_per_day=25)
    session.commit()
    writer = make_key(session, "writer", write=[collection])
    session.commit()
    with live_server(db_url) as server, httpx.Client(base_url=server.base, timeout=30) as http:
        posted = http.post(
            objects_url(collection), headers=writer.post, json=envelope(*(make_indicator(n) for n in range(OBJECTS)))
        )
        assert posted.status_code == 202, posted.text

        def walk(key: Key) -> tuple[list[int], Any]:
            sizes: list[int] = []
            params: dict[str, Any] = {"limit": LIMIT}
            for _ in range(OBJECTS // LIMIT + 1):
                response = http.get(objects_url(collection), headers=key.basic, params=params)
                if response.status_code != 200:
                    return sizes, response
                sizes.append(len(response.json()["objects"]))
                params["next"] = response.json()["next"]
            pytest.fail(f"{key.principal} was never refused: {sizes}")

        sizes, refused = walk(fast)
        assert sizes == [LIMIT] * 4
        _assert_refused(refused, "requests per minute")
        sizes, refused = walk(thrifty)
        assert sizes == [LIMIT, LIMIT, 5]
        _assert_refused(refused, "quota")
