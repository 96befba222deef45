"""API keys: several per principal, hashed at rest, expiry, revocation, rotation and last use."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.errors import Conflict
from indicator_exchange.services import services_of
from indicator_exchange.store.models import ApiKey
from tests.fixtures.clock import FakeClock
from tests.fixtures.factories import Key, make_collection, make_key


def _second_key(session: Session, principal: str, **kwargs: object) -> Key:
    created = admin.create_key(session, principal=principal, **kwargs)  # type: ignore[arg-type]
    return Key(principal, str(created["key_id"]), str(created["secret"]))


def _collections(client: TestClient, key: Key) -> int:
    return client.get("/api1/collections/", headers=key.basic).status_code


class TestKeys:
    def test_a_principal_may_hold_several_working_keys(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        first = make_key(session, "lab-a", read=[collection])
        second = _second_key(session, "lab-a")
        session.commit()
        assert _collections(client, first) == _collections(client, second) == 200

    def test_only_the_sha256_of_the_secret_is_stored(self, session: Session) -> None:
        make_collection(session)
        key = make_key(session, "lab-a")
        session.commit()
        row = session.execute(select(ApiKey).where(ApiKey.key_id == key.key_id)).scalar_one()
        assert row.secret_hash == hashlib.sha256(key.secret.encode()).hexdigest()
        assert all(key.secret not in str(value) for value in vars(row).values())

    def test_a_revoked_key_is_refused_at_once(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        assert _collections(client, key) == 200
        admin.revoke_key(session, key_id=key.key_id)
        session.commit()
        response = client.get("/api1/collections/", headers=key.basic)
        assert response.status_code == 401
        assert response.json()["description"] == "the API key is not valid"

    def test_an_expired_key_is_refused(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        make_key(session, "lab-a", read=[collection])
        key = _second_key(session, "lab-a", expires_at=datetime.now(UTC) + timedelta(hours=1))
        session.commit()
        clock = FakeClock()
        services_of(client.app).clock = clock
        assert _collections(client, key) == 200
        clock.advance(3601)
        assert _collections(client, key) == 401

    def test_an_inactive_principal_is_refused(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        admin.update_principal(session, name="lab-a", is_active=False)
        session.commit()
        assert _collections(client, key) == 401

    def test_a_wrong_secret_is_refused_like_an_unknown_key(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        wrong = client.get("/api1/collections/", headers=Key("lab-a", key.key_id, key.secret + "x").basic)
        unknown = client.get("/api1/collections/", headers=Key("lab-a", "ixk_0000000000000000", key.secret).basic)
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()

    @pytest.mark.parametrize(
        "header",
        [b"Basic \xc3\xbc\xff:\xfe", b"Basic \xe9t\xe9", b"Bearer \xff\xfe.\xc3\xbc", b"Basic " + b"A" * 10_000],
    )
    def test_a_malformed_non_ascii_header_is_401_not_500(
        self, client: TestClient, session: Session, header: bytes
    ) -> None:
        # Header bytes outside ASCII reach the app as Latin-1 text, which base64 refuses with a bare ValueError.
        make_collection(session)
        session.commit()
        answer = client.get(
            "/api1/collections/",
            headers=[(b"Authorization", header), (b"Accept", b"application/taxii+json;version=2.1")],
        )
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/taxii+json;version=2.1"
        assert "www-authenticate" in answer.headers


class TestRotation:
    def test_the_old_key_works_through_the_grace_period_then_expires(
        self, client: TestClient, session: Session
    ) -> None:
        collection = make_collection(session)
        old = make_key(session, "lab-a", read=[collection])
        rotated = admin.rotate_key(session, key_id=old.key_id, grace_hours=2)
        session.commit()
        new = Key("lab-a", str(rotated["key_id"]), str(rotated["secret"]))
        replaced = rotated["replaces"]
        assert isinstance(replaced, dict)
        assert replaced["key_id"] == old.key_id
        assert replaced["expires_at"] is not None
        clock = FakeClock()
        services_of(client.app).clock = clock
        assert _collections(client, old) == _collections(client, new) == 200
        clock.advance(2 * 3600 + 1)
        assert _collections(client, old) == 401
        assert _collections(client, new) == 200

    def test_rotation_never_extends_an_earlier_expiry(self, session: Session) -> None:
        make_collection(session)
        make_key(session, "lab-a")
        soon = datetime.now(UTC) + timedelta(minutes=30)
        old = _second_key(session, "lab-a", expires_at=soon)
        rotated = admin.rotate_key(session, key_id=old.key_id, grace_hours=24)
        replaced = rotated["replaces"]
        assert isinstance(replaced, dict)
        assert datetime.fromisoformat(str(replaced["expires_at"])) == soon

    def test_a_revoked_key_cannot_be_rotated(self, session: Session) -> None:
        make_collection(session)
        key = make_key(session, "lab-a")
        admin.revoke_key(session, key_id=key.key_id)
        with pytest.raises(Conflict):
            admin.rotate_key(session, key_id=key.key_id, grace_hours=1)


class TestLastUsed:
    def _last_used(self, session: Session, key: Key) -> datetime | None:
        value = session.execute(select(ApiKey.last_used_at).where(ApiKey.key_id == key.key_id)).scalar_one()
        session.rollback()  # release the SQLite write lock before the app writes again
        return value

    def test_last_used_at_is_refreshed_at_most_once_a_minute(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        clock = FakeClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
        services_of(client.app).clock = clock
        assert self._last_used(session, key) is None
        _collections(client, key)
        assert self._last_used(session, key) == clock.now
        first = clock.now
        clock.advance(30)
        _collections(client, key)
        assert self._last_used(session, key) == first  # no write within the minute
        clock.advance(31)
        _collections(client, key)
        assert self._last_used(session, key) == clock.now

    def test_a_refused_key_is_not_marked_used(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        client.get("/api1/collections/", headers=Key("lab-a", key.key_id, "wrong-secret").basic)
        assert self._last_used(session, key) is None


class TestNoGrant:
    def test_a_principal_without_any_grant_sees_no_api_root(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "stranger", clearance="red")
        session.commit()
        discovery = client.get("/taxii2/", headers=key.basic)
        assert discovery.status_code == 200
        assert "api_roots" not in discovery.json()
        # Non-disclosure: the API root answers as one that does not exist.
        assert client.get("/api1/", headers=key.basic).status_code == 404
        assert client.get(f"/api1/collections/{collection}/", headers=key.basic).status_code == 404
        assert client.get(f"/api1/collections/{collection}/objects/", headers=key.basic).status_code == 404
