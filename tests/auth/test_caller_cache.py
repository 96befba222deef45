"""Cached authentication: reused while nothing changed, dropped at once when anything did (auth epoch)."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from indicator_exchange import dependencies
from indicator_exchange.store import principals
from tests.fixtures.factories import Key, make_collection, make_key, objects_url


@pytest.fixture
def auth_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real (database) authentications."""
    calls: list[str] = []
    real: Callable[..., Any] = dependencies.authenticate

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("db")
        return real(*args, **kwargs)

    monkeypatch.setattr(dependencies, "authenticate", counting)
    return calls


def _read(client: TestClient, key: Key, collection: object) -> int:
    return client.get(objects_url(collection), headers=key.basic).status_code  # type: ignore[arg-type]


class TestCallerCache:
    def test_an_unchanged_key_is_authenticated_once(
        self, client: TestClient, session: Session, auth_calls: list[str]
    ) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        assert [_read(client, key, collection) for _ in range(3)] == [200, 200, 200]
        assert auth_calls == ["db"]

    def test_a_wrong_secret_never_uses_the_cached_key(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        assert _read(client, key, collection) == 200
        assert _read(client, Key("lab-a", key.key_id, "not-the-secret"), collection) == 401

    @pytest.mark.parametrize(
        "change",
        [
            "UPDATE api_key SET revoked_at = CURRENT_TIMESTAMP WHERE key_id = :key_id",
            'DELETE FROM "grant"',
            "UPDATE principal SET is_active = false",
            "UPDATE principal SET clearance = 0",
        ],
    )
    def test_a_change_in_plain_sql_applies_at_the_next_request(
        self, client: TestClient, session: Session, change: str, auth_calls: list[str]
    ) -> None:
        """The epoch triggers catch every path, not only the admin API."""
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        assert _read(client, key, collection) == 200
        session.execute(text(change), {"key_id": key.key_id})
        session.commit()
        status = _read(client, key, collection)
        assert len(auth_calls) == 2  # the cached caller was dropped and the key read again
        if "clearance" not in change:
            assert status in (401, 404)  # no grant left: as if the collection did not exist

    def test_refreshing_last_used_at_does_not_move_the_epoch(self, session: Session) -> None:
        make_collection(session)
        key = make_key(session, "lab-a")
        session.commit()
        before = principals.auth_epoch(session)
        principals.touch_key(session, key.key_id, dependencies.utc_now())
        session.commit()
        assert principals.auth_epoch(session) == before

    def test_a_new_grant_moves_the_epoch(self, session: Session) -> None:
        collection = make_collection(session)
        make_key(session, "lab-a")
        session.commit()
        before = principals.auth_epoch(session)
        make_key(session, "lab-b", read=[collection])
        session.commit()
        after = principals.auth_epoch(session)
        assert before is not None
        assert after is not None
        assert after > before
