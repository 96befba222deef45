"""Read-ahead (``taxii.read_ahead``): the next page of a poll is read while the client takes in this one, and
is served only while nothing it depends on has changed. Each test here fails if a stale page is served or if
read-ahead silently stops being used."""

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from indicator_exchange.app import create_app
from indicator_exchange.services import services_of
from indicator_exchange.store.engine import LoopConnection
from indicator_exchange.store.models import AuditEvent
from indicator_exchange.store.objects import CheckedPage, JoinedPage, ReadFilter, Visibility
from indicator_exchange.store.read_ahead import TRIAL, PageRead, ReadAhead, poll_key
from tests.conftest import make_settings
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url

OBJECTS = 30
LIMIT = 10


def _read_ahead(client: TestClient) -> ReadAhead:
    found: ReadAhead = services_of(client.app).read_ahead
    return found


def _load(session: Session, client: TestClient) -> tuple[uuid.UUID, Key]:
    found = make_collection(session)
    key = make_key(session, "lab-a", read=[found], write=[found])
    session.commit()
    objects = [make_indicator(n) for n in range(OBJECTS)]
    assert client.post(objects_url(found), headers=key.post, json=envelope(*objects)).status_code == 202
    return found, key


def _page(client: TestClient, found: uuid.UUID, key: Key, **params: Any) -> Any:
    response = client.get(objects_url(found), headers=key.basic, params={"limit": LIMIT, **params})
    assert response.status_code == 200, response.text
    return response


def _ids(response: Any) -> list[str]:
    return [o["id"] for o in response.json().get("objects", [])]


def _walk(client: TestClient, found: uuid.UUID, key: Key, *, by_header: bool = False) -> list[str]:
    """A whole poll, following ``next`` (or ``added_after`` = the last page's X-TAXII-Date-Added-Last)."""
    ids: list[str] = []
    params: dict[str, Any] = {}
    for _ in range(OBJECTS // LIMIT + 2):  # bounded: a poll that never ends fails, it does not hang
        response = _page(client, found, key, **params)
        ids += _ids(response)
        if not response.json()["more"]:
            return ids
        _read_ahead(client).settle()
        if by_header:
            params = {"added_after": response.headers["X-TAXII-Date-Added-Last"]}
        else:
            params = {"next": response.json()["next"]}
    pytest.fail("the poll did not end")


class TestPolls:
    pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

    @pytest.mark.parametrize("by_header", [False, True], ids=["next", "added_after"])
    def test_a_poll_is_served_from_read_ahead_and_loses_nothing(
        self, client: TestClient, session: Session, by_header: bool
    ) -> None:
        found, key = _load(session, client)
        _page(client, found, key)  # warms the caller and catalog caches: the fast path reads ahead
        read_ahead = _read_ahead(client)
        served = read_ahead.served
        ids = _walk(client, found, key, by_header=by_header)
        assert ids == [make_indicator(n)["id"] for n in range(OBJECTS)]
        assert read_ahead.served - served == OBJECTS // LIMIT - 1  # every page but the first

    def test_a_new_version_after_the_read_ahead_is_not_missed(self, client: TestClient, session: Session) -> None:
        found, key = _load(session, client)
        _page(client, found, key)
        first = _page(client, found, key)
        _read_ahead(client).settle()
        moved = make_indicator(LIMIT + 2, modified="2026-03-01T00:00:00.000Z")  # on page two
        assert client.post(objects_url(found), headers=key.post, json=envelope(moved)).status_code == 202
        stale = _read_ahead(client).stale
        second = _ids(_page(client, found, key, next=first.json()["next"]))
        assert moved["id"] not in second  # its old version is no longer the latest
        assert _read_ahead(client).stale == stale + 1
        assert _walk(client, found, key).count(str(moved["id"])) == 1  # once, at its new place

    def test_a_delete_after_the_read_ahead_is_honoured(self, client: TestClient, session: Session) -> None:
        found, key = _load(session, client)
        _page(client, found, key)
        first = _page(client, found, key)
        _read_ahead(client).settle()
        gone = str(make_indicator(LIMIT + 3)["id"])
        assert client.delete(objects_url(found) + f"{gone}/", headers=key.basic).status_code == 200
        second = _ids(_page(client, found, key, next=first.json()["next"]))
        assert gone not in second
        assert len(second) == LIMIT  # the page is refilled from the next objects, as a fresh read would be

    def test_a_grant_revoked_after_the_read_ahead_is_refused(self, client: TestClient, session: Session) -> None:
        found, key = _load(session, client)
        _page(client, found, key)
        first = _page(client, found, key)
        _read_ahead(client).settle()
        session.execute(text('UPDATE "grant" SET can_read = false'))
        session.commit()
        response = client.get(
            objects_url(found), headers=key.basic, params={"limit": LIMIT, "next": first.json()["next"]}
        )
        assert response.status_code == 403

    def test_another_principal_never_gets_a_page_read_for_someone_else(
        self, client: TestClient, session: Session
    ) -> None:
        found, key = _load(session, client)
        other = make_key(session, "lab-b", read=[found])
        session.commit()
        _page(client, found, key)
        first = _page(client, found, key)
        _read_ahead(client).settle()
        served = _read_ahead(client).served
        assert client.get(objects_url(found), headers=other.basic).status_code == 200  # warm lab-b, one page
        assert _ids(_page(client, found, other, next=first.json()["next"]))
        assert _read_ahead(client).served == served

    @pytest.mark.parametrize(
        "other",
        [
            {"match[type]": "indicator"},
            {"match[version]": "all"},
            {"match[spec_version]": "2.1"},
            {"limit": LIMIT + 1},
        ],
        ids=["type", "version", "spec_version", "limit"],
    )
    def test_a_page_read_ahead_is_never_served_to_a_read_under_other_filters(
        self, client: TestClient, session: Session, other: dict[str, Any]
    ) -> None:
        """The same position under other filters (or another page size) is read afresh: the page read ahead
        for the first filters stays unserved, and the answer is what a fresh read gives."""
        found, key = _load(session, client)
        _page(client, found, key)
        first = _page(client, found, key)
        _read_ahead(client).settle()
        served = _read_ahead(client).served
        position = {"added_after": first.headers["X-TAXII-Date-Added-Last"]}
        answer = _page(client, found, key, **{**position, **other})
        assert _read_ahead(client).served == served
        services_of(client.app).read_ahead.close()  # nothing read ahead can answer the reference read
        fresh = client.get(objects_url(found), headers=key.basic, params={"limit": LIMIT, **position, **other})
        assert answer.content == fresh.content

    def test_the_audit_row_of_a_page_read_ahead_records_what_was_served(
        self, client: TestClient, session: Session
    ) -> None:
        found, key = _load(session, client)
        _page(client, found, key)
        first = _page(client, found, key)
        _read_ahead(client).settle()
        served = _read_ahead(client).served
        _page(client, found, key, next=first.json()["next"])
        assert _read_ahead(client).served == served + 1
        clock = session.execute(text("SELECT last_date_added FROM collection WHERE id = :c"), {"c": found}).scalar()
        session.expire_all()
        row = session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
        assert (row.method, row.status_code, row.object_count, row.collection_clock) == ("GET", 200, LIMIT, clock)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("loop_path", ["on", "off", "broken"])
def test_pages_read_ahead_are_served_on_the_event_loop_or_through_the_thread_pool(
    client: TestClient, session: Session, loop_path: str
) -> None:
    """The event loop serves pages read ahead; without its connection the threaded path serves them instead.
    With a broken one, pages are read afresh: the same answers, only slower."""
    state = services_of(client.app)
    if loop_path == "off":
        state.loop_connection = None
    elif loop_path == "broken":
        state.loop_connection = LoopConnection("postgresql://nobody@127.0.0.1:1/none")
    found, key = _load(session, client)
    _page(client, found, key)
    served = _read_ahead(client).served
    assert _walk(client, found, key) == [make_indicator(n)["id"] for n in range(OBJECTS)]
    assert _read_ahead(client).served - served == (0 if loop_path == "broken" else OBJECTS // LIMIT - 1)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_off_when_the_setting_is_zero(db_url: str, session: Session) -> None:
    with TestClient(create_app(make_settings(db_url, read_ahead_pages=0))) as client:
        found, key = _load(session, client)
        _page(client, found, key)
        assert len(_walk(client, found, key)) == OBJECTS
        assert _read_ahead(client).started == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_reads_nothing_ahead(client: TestClient, session: Session) -> None:
    found, key = _load(session, client)
    assert len(_walk(client, found, key)) == OBJECTS
    assert _read_ahead(client).started == 0


# The store object itself, without a database.


def _page_read(clock: int = 5, epoch: int = 1) -> PageRead:
    return CheckedPage(JoinedPage(1, 1, 1, [b"{}"], False), clock=clock, epoch=epoch), b"{}"


@contextlib.contextmanager
def _no_session() -> Iterator[Any]:
    yield None


def _unit(capacity: int = 2, ttl_seconds: float = 30.0, pause_seconds: float = 60.0) -> ReadAhead:
    return ReadAhead(
        _no_session,  # type: ignore[arg-type]
        capacity=capacity,
        ttl_seconds=ttl_seconds,
        pause_seconds=pause_seconds,
    )


def _key(after: int, principal: int = 1) -> Any:
    return poll_key(uuid.UUID(int=principal), uuid.UUID(int=2), Visibility(2, 1), ReadFilter(), after=after, limit=10)


def test_a_page_is_taken_once() -> None:
    read_ahead = _unit()
    read_ahead.start(_key(1), lambda _session: _page_read())
    assert read_ahead.take(_key(1)) == _page_read()
    assert read_ahead.take(_key(1)) is None
    assert read_ahead.take(_key(2)) is None
    read_ahead.close()


def test_a_full_worker_skips_new_pages_until_places_free_up() -> None:
    read_ahead = _unit(capacity=2, ttl_seconds=0.2)
    for after in (1, 2, 3):
        read_ahead.start(_key(after), lambda _session: _page_read())
    read_ahead.settle()
    assert (read_ahead.started, read_ahead.skipped) == (2, 1)
    assert read_ahead.take(_key(3)) is None  # skipped: never read
    assert read_ahead.take(_key(1)) is not None  # the pages read are kept for their polls
    read_ahead.start(_key(4), lambda _session: _page_read())  # a place is free again
    read_ahead.settle()
    assert read_ahead.take(_key(4)) is not None
    time.sleep(0.3)  # the page no one took expires, and its place with it
    read_ahead.start(_key(5), lambda _session: _page_read())
    read_ahead.start(_key(6), lambda _session: _page_read())
    assert (read_ahead.started, read_ahead.skipped) == (5, 1)
    read_ahead.close()


def test_an_old_page_is_not_served() -> None:
    read_ahead = _unit(ttl_seconds=0.05)
    read_ahead.start(_key(1), lambda _session: _page_read())
    read_ahead.settle()
    time.sleep(0.1)
    assert read_ahead.take(_key(1)) is None
    read_ahead.close()


def test_a_failed_read_is_left_to_the_request() -> None:
    read_ahead = _unit()

    def fail(_session: Any) -> PageRead:
        raise RuntimeError("connection lost")

    read_ahead.start(_key(1), fail)
    read_ahead.settle()
    assert read_ahead.take(_key(1)) is None
    read_ahead.close()


def test_a_page_not_yet_started_is_cancelled_not_awaited() -> None:
    read_ahead = _unit(capacity=4)
    blocker: Future[None] = Future()
    read_ahead.start(_key(1), lambda _session: (blocker.result(5), _page_read())[1])  # occupies the thread
    read_ahead.start(_key(2), lambda _session: _page_read())
    began = time.monotonic()
    assert read_ahead.take(_key(2)) is None  # queued behind the first: the request reads it itself
    assert time.monotonic() - began < 1
    blocker.set_result(None)
    read_ahead.close()


@pytest.mark.parametrize(("clock", "epoch", "fresh"), [(5, 1, True), (6, 1, False), (5, 2, False), (None, None, False)])
def test_a_page_is_accepted_only_under_the_same_clock_and_epoch(
    clock: int | None, epoch: int | None, fresh: bool
) -> None:
    read_ahead = _unit()
    assert read_ahead.accept(_page_read()[0], clock=clock, epoch=epoch) is fresh
    assert (read_ahead.served, read_ahead.stale) == ((1, 0) if fresh else (0, 1))
    read_ahead.close()


def test_off_reads_nothing() -> None:
    read_ahead = _unit(capacity=0)
    read_ahead.start(_key(1), lambda _session: _page_read())
    assert read_ahead.take(_key(1)) is None
    assert read_ahead.started == 0
    read_ahead.close()


def test_a_match_id_poll_is_not_read_ahead() -> None:
    assert poll_key(None, uuid.UUID(int=2), Visibility(2, 1), ReadFilter(ids=["x"]), after=None, limit=10) is None


def test_a_client_that_never_asks_for_its_pages_stops_getting_them_for_a_while() -> None:
    read_ahead = _unit(capacity=100, pause_seconds=0.2)
    for after in range(TRIAL + 5):  # pages by some other position: nothing read for it is ever taken
        read_ahead.start(_key(after), lambda _session: _page_read())
    assert read_ahead.started == TRIAL
    assert read_ahead.paused == 1
    read_ahead.start(_key(1, principal=7), lambda _session: _page_read())  # someone else is not affected
    assert read_ahead.started == TRIAL + 1
    time.sleep(0.3)
    read_ahead.start(_key(99), lambda _session: _page_read())  # a fresh trial after the pause
    assert read_ahead.started == TRIAL + 2
    read_ahead.close()


def test_a_client_that_follows_its_pages_is_never_paused() -> None:
    read_ahead = _unit(capacity=100)
    for after in range(5 * TRIAL):
        read_ahead.start(_key(after), lambda _session: _page_read())
        read_ahead.settle()
        assert read_ahead.take(_key(after)) is not None
    assert (read_ahead.started, read_ahead.paused) == (5 * TRIAL, 0)
    read_ahead.close()
