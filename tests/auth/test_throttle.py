"""Failed authentications throttled per key id and per client address (429 before the key is looked up), and
aggregated in the audit trail: a burst is its first row plus one row with the count of its repeats."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange import metrics
from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.auth.throttle import ADDRESS_CEILING_FACTOR
from indicator_exchange.store.models import AuditEvent
from tests.conftest import make_settings
from tests.fixtures.clock import FakeClock
from tests.fixtures.factories import Key, make_collection, make_key

LIMIT = 3


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(db_url: str, clock: FakeClock) -> FastAPI:
    return create_app(make_settings(db_url, auth_failures_per_minute=LIMIT, auth_cache_seconds=0), clock=clock)


def _client(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, client=(address, 40000))


@pytest.fixture
def key(session: Session) -> Key:
    collection = make_collection(session)
    made = make_key(session, "lab-a", read=[collection])
    session.commit()
    return made


def _wrong(key: Key) -> Key:
    return Key(principal=key.principal, key_id=key.key_id, secret="not-the-secret-at-all")


def _status(client: TestClient, key: Key) -> int:
    return client.get("/api1/collections/", headers=key.basic).status_code


class TestThrottle:
    def test_past_the_limit_an_address_gets_429_with_retry_after(self, app: FastAPI, key: Key) -> None:
        with _client(app, "46.133.2.10") as client:
            assert [_status(client, _wrong(key)) for _ in range(LIMIT)] == [401] * LIMIT
            refused = client.get("/api1/collections/", headers=_wrong(key).basic)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["content-type"] == "application/taxii+json;version=2.1"
            # The right secret of that key id waits too: the key id itself is over, refused before hashing.
            assert _status(client, key) == 429

    def test_the_key_id_is_throttled_from_every_address(self, app: FastAPI, key: Key) -> None:
        for n in range(LIMIT):
            with _client(app, f"46.133.2.{20 + n}") as client:
                assert _status(client, _wrong(key)) == 401
        with _client(app, "46.133.2.99") as client:
            assert _status(client, _wrong(key)) == 429
            assert _status(client, key) == 429

    def test_other_keys_and_addresses_are_unaffected(self, app: FastAPI, key: Key, session: Session) -> None:
        other = make_key(session, "lab-b")
        session.commit()
        with _client(app, "46.133.2.30") as client:
            for _ in range(LIMIT + 1):
                _status(client, _wrong(key))
        with _client(app, "46.133.2.31") as client:
            assert client.get("/taxii2/", headers=other.basic).status_code == 200

    def test_the_throttle_lifts_after_a_minute(self, app: FastAPI, key: Key, clock: FakeClock) -> None:
        with _client(app, "46.133.2.40") as client:
            for _ in range(LIMIT):
                _status(client, _wrong(key))
            assert _status(client, key) == 429
            clock.advance(121)
            assert _status(client, key) == 200

    def test_refusals_are_cheap_and_counted(self, app: FastAPI, key: Key) -> None:
        throttled = metrics.AUTH_THROTTLED._value.get()
        failures = metrics.AUTH_FAILURES._value.get()
        with _client(app, "46.133.2.50") as client:
            for _ in range(LIMIT + 5):
                _status(client, _wrong(key))
        assert metrics.AUTH_FAILURES._value.get() == failures + LIMIT
        assert metrics.AUTH_THROTTLED._value.get() == throttled + 5

    def test_zero_turns_it_off(self, db_url: str, key: Key) -> None:
        app = create_app(make_settings(db_url, auth_failures_per_minute=0, auth_cache_seconds=0))
        with _client(app, "46.133.2.60") as client:
            assert {_status(client, _wrong(key)) for _ in range(LIMIT + 3)} == {401}
            assert _status(client, key) == 200


def _audit_rows(session: Session, address: str) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).where(AuditEvent.client_addr == address).order_by(AuditEvent.id)
    rows = list(session.execute(query).scalars())
    session.rollback()  # SQLite: release the write lock the audit writer needs
    return rows


def _second_key(session: Session, key: Key) -> Key:
    """Another key of the same principal: another machine of the lab, behind the same address."""
    created = admin.create_key(session, principal=key.principal)
    session.commit()
    return Key(principal=key.principal, key_id=str(created["key_id"]), secret=str(created["secret"]))


def _unknown(n: int) -> Key:
    return Key(principal="nobody", key_id=f"ixk_{n:016x}", secret="guessed-secret")


class TestSharedAddress:
    """A lab's fleet behind one NAT address: one machine's failures must not lock its honest neighbours out."""

    def test_a_right_secret_is_accepted_from_an_address_over_the_limit(
        self, app: FastAPI, key: Key, session: Session
    ) -> None:
        neighbour = _second_key(session, key)
        with _client(app, "46.133.3.10") as client:
            assert [_status(client, _wrong(key)) for _ in range(LIMIT)] == [401] * LIMIT
            assert _status(client, _wrong(key)) == 429  # that key id is over: refused before hashing
            # Not cached (auth_cache_seconds=0), so it authenticates afresh: its key id has no failures.
            assert _status(client, neighbour) == 200
            assert _status(client, neighbour) == 200

    def test_unknown_key_ids_do_not_lock_out_the_address(self, app: FastAPI, key: Key) -> None:
        with _client(app, "46.133.3.20") as client:
            assert {_status(client, _unknown(n)) for n in range(LIMIT + 2)} == {401}
            assert _status(client, key) == 200

    def test_past_the_address_limit_only_named_key_ids_are_checked(self, app: FastAPI, key: Key) -> None:
        garbage = Key(principal="nobody", key_id="not-a-key-id", secret="x")
        with _client(app, "46.133.3.30") as client:
            for n in range(LIMIT):
                assert _status(client, _unknown(n)) == 401
            assert _status(client, garbage) == 429  # no key id of ours to bound it: the address limit applies
            # A wrong secret for a key id under its own limit is checked, and counted against that key id.
            assert [_status(client, _wrong(key)) for _ in range(LIMIT)] == [401] * LIMIT
            assert _status(client, key) == 429

    def test_the_address_ceiling_refuses_everything(self, app: FastAPI, key: Key) -> None:
        ceiling = LIMIT * ADDRESS_CEILING_FACTOR
        with _client(app, "46.133.3.40") as client:
            assert {_status(client, _unknown(n)) for n in range(ceiling)} == {401}
            refused = client.get("/api1/collections/", headers=key.basic)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
        with _client(app, "46.133.3.41") as client:
            assert _status(client, key) == 200  # the key id itself was never attacked

    def test_the_dashboard_sign_in_works_from_an_address_over_the_limit(self, app: FastAPI, session: Session) -> None:
        auditor = make_key(session, "auditor", kind="compliance")
        session.commit()
        with _client(app, "46.133.3.50") as client:
            for n in range(LIMIT + 1):
                client.post("/ui/login", data={"key_id": _unknown(n).key_id, "secret": "guessed"})
            signed_in = client.post(
                "/ui/login", data={"key_id": auditor.key_id, "secret": auditor.secret}, follow_redirects=False
            )
            assert signed_in.status_code == 303

    def test_the_neighbours_success_is_audited_and_the_failures_stay_aggregated(
        self, app: FastAPI, key: Key, session: Session
    ) -> None:
        neighbour = _second_key(session, key)
        with _client(app, "46.133.3.60") as client:
            for _ in range(LIMIT + 4):
                _status(client, _wrong(key))
            assert _status(client, neighbour) == 200
        rows = _audit_rows(session, "46.133.3.60")
        successes = [r for r in rows if r.status_code == 200]
        assert [r.key_id for r in successes] == [neighbour.key_id]
        failures = sorted((r.status_code, r.object_count or 0) for r in rows if r.status_code != 200)
        assert failures == [(401, 0), (401, LIMIT - 1), (429, 0), (429, 3)]  # two bursts: first rows, then counts


class TestBurstsInTheAuditTrail:
    def _rows(self, session: Session, address: str) -> list[AuditEvent]:
        return _audit_rows(session, address)

    def test_a_burst_is_its_first_row_and_one_row_counting_the_rest(
        self, db_url: str, key: Key, session: Session
    ) -> None:
        app = create_app(make_settings(db_url, auth_failures_per_minute=0, auth_cache_seconds=0))
        with _client(app, "46.133.2.70") as client:
            for _ in range(25):
                assert _status(client, _wrong(key)) == 401
            assert len(self._rows(session, "46.133.2.70")) == 1  # the repeats are not written one by one
        rows = self._rows(session, "46.133.2.70")  # the app stopped: the open burst was summarised
        assert [(r.status_code, r.object_count) for r in rows] == [(401, None), (401, 24)]
        assert rows[0].detail
        assert "wrong secret" in rows[0].detail
        assert rows[1].detail
        assert rows[1].detail.startswith("24 more failed attempts like this one")
        assert rows[1].key_id == key.key_id

    def test_throttled_attempts_are_aggregated_too(self, app: FastAPI, key: Key, session: Session) -> None:
        with _client(app, "46.133.2.80") as client:
            for _ in range(LIMIT + 10):
                _status(client, _wrong(key))
        rows = self._rows(session, "46.133.2.80")
        # Each burst's first row at once (the 401, then the 429), their counts when the bursts end.
        statuses = [(r.status_code, r.object_count) for r in rows]
        assert statuses == [(401, None), (429, None), (401, LIMIT - 1), (429, 9)]

    def test_successful_requests_are_never_aggregated(self, db_url: str, key: Key, session: Session) -> None:
        app = create_app(make_settings(db_url, auth_failures_per_minute=0))
        with _client(app, "46.133.2.90") as client:
            for _ in range(5):
                assert _status(client, key) == 200
        assert len(self._rows(session, "46.133.2.90")) == 5


class TestDashboardSignIn:
    def test_wrong_secrets_at_the_sign_in_form_are_throttled(self, app: FastAPI, session: Session) -> None:
        key = make_key(session, "auditor", kind="compliance")
        session.commit()
        wrong = {"key_id": key.key_id, "secret": "not-the-secret-at-all"}
        with _client(app, "46.133.2.100") as client:
            assert [client.post("/ui/login", data=wrong).status_code for _ in range(LIMIT)] == [401] * LIMIT
            refused = client.post("/ui/login", data={"key_id": key.key_id, "secret": key.secret})
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert "Too many failed sign-ins" in refused.text


class TestReports:
    def test_the_sharing_report_counts_every_attempt_of_a_burst(self, db_url: str, key: Key, session: Session) -> None:
        auditor = make_key(session, "auditor", kind="compliance", clearance="red")
        session.commit()
        app = create_app(make_settings(db_url, auth_failures_per_minute=0, auth_cache_seconds=0))
        with _client(app, "46.133.2.110") as client:
            for _ in range(7):
                assert _status(client, _wrong(key)) == 401
        params = {"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "format": "json"}
        with _client(app, "46.133.2.111") as client:
            report = client.get("/api/v1/reports/sharing", headers=auditor.bearer, params=params)
        assert report.status_code == 200, report.text
        shared = report.json()["shared"]
        assert sum(row["denied"] for row in shared["rows"]) == 7
