"""Polls served from the worker's caches (caller and catalog), checked by the page's own statement.

On PostgreSQL a warm poll is one statement: the page, the collection clock and the auth epoch together. These
tests hold it to that, and show that a change made by any path (here plain SQL) applies at the next request.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from indicator_exchange.services import services_of
from indicator_exchange.store.models import AuditEvent
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def statements(client: TestClient) -> Iterator[list[str]]:
    """SQL the request pools run through SQLAlchemy (the cached poll's page statement goes straight to
    psycopg, so a warm poll adds nothing here)."""
    seen: list[str] = []
    engine = services_of(client.app).engines.primary

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _setup(session: Session, client: TestClient, **collection: Any) -> tuple[Any, Key]:
    found = make_collection(session, **collection)
    key = make_key(session, "lab-a", read=[found], write=[found])
    session.commit()
    marked, unmarked = make_indicator(1), make_indicator(2, tlp=None)
    assert client.post(objects_url(found), headers=key.post, json=envelope(marked, unmarked)).status_code == 202
    return found, key


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [o["id"] for o in response.json().get("objects", [])]


def test_a_warm_poll_runs_no_statement_besides_its_page(
    client: TestClient, session: Session, statements: list[str]
) -> None:
    found, key = _setup(session, client)
    first = _ids(client.get(objects_url(found), headers=key.basic))
    statements.clear()
    assert _ids(client.get(objects_url(found), headers=key.basic)) == first
    assert _ids(client.get(objects_url(found) + f"{first[0]}/", headers=key.basic)) == first[:1]
    assert statements == []


def test_the_audit_row_records_the_clock_the_page_was_read_under(client: TestClient, session: Session) -> None:
    found, key = _setup(session, client)
    for _ in range(2):  # cold, then warm
        assert client.get(objects_url(found), headers=key.basic).status_code == 200
    clock = session.execute(text("SELECT last_date_added FROM collection WHERE id = :c"), {"c": found}).scalar()
    session.expire_all()
    reads = session.execute(
        select(AuditEvent.collection_clock).where(AuditEvent.method == "GET").order_by(AuditEvent.id)
    ).scalars()
    assert list(reads)[-2:] == [clock, clock]


@pytest.mark.parametrize(
    ("change", "old_url_status"),
    [
        ("UPDATE collection SET default_tlp = 3", 200),  # unmarked objects now above the amber clearance
        ("UPDATE collection SET alias = 'renamed'", 200),
        ("DELETE FROM collection", 404),  # no collection left in the root: nothing it may see there
        ("UPDATE api_root SET name = 'moved'", 404),
        ('UPDATE "grant" SET can_read = false', 403),  # the write grant stays: 403, not 404
        ("UPDATE principal SET clearance = 1", 200),  # green: the amber-marked default hides the unmarked one
    ],
)
def test_a_catalog_or_grant_change_in_plain_sql_applies_at_the_next_poll(
    client: TestClient, session: Session, change: str, old_url_status: int
) -> None:
    found, key = _setup(session, client)
    before = _ids(client.get(objects_url(found), headers=key.basic))
    assert len(before) == 2
    session.execute(text(change))
    session.commit()
    after = client.get(objects_url(found), headers=key.basic)
    assert after.status_code == old_url_status, after.text
    if "default_tlp" in change or "clearance" in change:
        assert _ids(after) == [make_indicator(1)["id"]]
    if "alias" in change:
        assert _ids(client.get(objects_url("renamed"), headers=key.basic)) == before  # type: ignore[arg-type]


def test_a_changed_clock_alone_keeps_the_cache(client: TestClient, session: Session, statements: list[str]) -> None:
    """Writes move the collection clock on every POST; that must not cost the readers their cache."""
    found, key = _setup(session, client)
    _ids(client.get(objects_url(found), headers=key.basic))
    assert client.post(objects_url(found), headers=key.post, json=envelope(make_indicator(3))).status_code == 202
    statements.clear()
    assert len(_ids(client.get(objects_url(found), headers=key.basic))) == 3
    assert statements == []
