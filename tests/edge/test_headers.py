"""Forwarded headers believed from IX_TRUSTED_PROXIES only, IX_PUBLIC_BASE_URL, HSTS over HTTPS, and the
/metrics endpoint with its allow-list."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from indicator_exchange.app import create_app
from indicator_exchange.store.models import AuditEvent
from tests.conftest import make_settings
from tests.fixtures.factories import Key, make_collection, make_key

FORGED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "X-Forwarded-For": "46.91.113.9"}


@pytest.fixture
def admin(session: Session) -> Key:
    make_collection(session)
    key = make_key(session, "root", kind="admin")
    session.commit()
    return key


def _discovery(client: TestClient, key: Key, headers: dict[str, str] | None = None) -> list[str]:
    answer = client.get("/taxii2/", headers={**key.basic, **(headers or {})})
    assert answer.status_code == 200, answer.text
    roots: list[str] = answer.json()["api_roots"]
    return roots


class TestForwardedHeaders:
    def test_ignored_from_an_untrusted_loopback_client(self, db_url: str, admin: Key) -> None:
        app = create_app(make_settings(db_url))
        with TestClient(app, client=("127.0.0.1", 5000)) as client:
            assert _discovery(client, admin, FORGED) == ["http://testserver/api1/"]

    def test_a_forged_host_does_not_rewrite_urls(self, db_url: str, admin: Key) -> None:
        app = create_app(make_settings(db_url))
        with TestClient(app, client=("127.0.0.1", 5000)) as client:
            assert _discovery(client, admin, {"Host": "evil.example"}) == ["http://testserver/api1/"]

    def test_believed_from_a_trusted_proxy(self, db_url: str, admin: Key) -> None:
        app = create_app(make_settings(db_url, trusted_proxies="10.0.0.0/8"))
        with TestClient(app, client=("10.1.2.3", 5000)) as client:
            assert _discovery(client, admin, FORGED) == ["https://evil.example/api1/"]

    def test_the_client_address_is_the_right_most_untrusted_hop(self, db_url: str, admin: Key) -> None:
        app = create_app(make_settings(db_url, trusted_proxies="10.0.0.0/8", metrics_clients="46.112.100.7"))
        with TestClient(app, client=("10.1.2.3", 5000)) as client:
            # The client wrote the first hop itself; the proxy appended the address it saw.
            spoofed = {"X-Forwarded-For": "127.0.0.1, 46.112.100.7, 10.9.9.9"}
            assert client.get("/metrics", headers=spoofed).status_code == 200
            assert client.get("/metrics", headers={"X-Forwarded-For": "46.112.100.8"}).status_code == 404

    def test_the_public_base_url_wins_over_host(self, db_url: str, admin: Key) -> None:
        app = create_app(make_settings(db_url, public_base_url="https://taxii.example.org"))
        with TestClient(app) as client:
            assert _discovery(client, admin, {"Host": "evil.example"}) == ["https://taxii.example.org/api1/"]

    def test_a_public_base_url_with_a_path_is_refused(self, db_url: str) -> None:
        with pytest.raises(ValueError, match="no path"):
            make_settings(db_url, public_base_url="https://taxii.example.org/prefix")

    def test_a_bad_cidr_is_refused_at_start(self, db_url: str) -> None:
        with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
            make_settings(db_url, trusted_proxies="10.0.0.0/8, not-a-network")

    def test_the_cookie_is_secure_only_behind_a_trusted_https_proxy(self, db_url: str, session: Session) -> None:
        key = make_key(session, "auditor", kind="compliance")
        session.commit()
        form = {"key_id": key.key_id, "secret": key.secret}
        for trusted, expected in (("", False), ("10.0.0.0/8", True)):
            app = create_app(make_settings(db_url, trusted_proxies=trusted))
            with TestClient(app, client=("10.1.2.3", 5000), follow_redirects=False) as client:
                answer = client.post("/ui/login", data=form, headers={"X-Forwarded-Proto": "https"})
                assert answer.status_code == 303, answer.text
                assert ("secure" in answer.headers["set-cookie"].lower()) is expected


class TestHsts:
    def test_sent_over_https(self, db_url: str) -> None:
        with TestClient(create_app(make_settings(db_url)), base_url="https://testserver") as client:
            assert client.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"

    def test_not_sent_over_http(self, db_url: str) -> None:
        with TestClient(create_app(make_settings(db_url))) as client:
            assert "strict-transport-security" not in client.get("/healthz").headers

    def test_zero_turns_it_off(self, db_url: str) -> None:
        app = create_app(make_settings(db_url, hsts_seconds=0))
        with TestClient(app, base_url="https://testserver") as client:
            assert "strict-transport-security" not in client.get("/healthz").headers

    def test_on_errors_too(self, db_url: str) -> None:
        with TestClient(create_app(make_settings(db_url)), base_url="https://testserver") as client:
            answer = client.get("/taxii2/")
            assert answer.status_code == 401
            assert answer.headers["strict-transport-security"] == "max-age=31536000"


class TestMetrics:
    def test_scraped_from_loopback(self, db_url: str, admin: Key) -> None:
        with TestClient(create_app(make_settings(db_url)), client=("127.0.0.1", 5000)) as client:
            assert client.get("/taxii2/", headers=admin.basic).status_code == 200
            assert client.get("/taxii2/").status_code == 401
            answer = client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        text = answer.text
        assert 'ix_http_requests_total{method="GET",route="/taxii2/",status="200"}' in text
        assert 'ix_http_requests_total{method="GET",route="/taxii2/",status="401"}' in text
        for name in (
            "ix_database_unavailable_total",
            "ix_audit_spool_size",
            "ix_audit_dropped_total",
            "ix_auth_failures_total",
            "ix_auth_throttled_total",
        ):
            assert f"\n{name} " in text, name

    def test_refused_elsewhere(self, db_url: str) -> None:
        with TestClient(create_app(make_settings(db_url)), client=("46.133.2.1", 5000)) as client:
            assert client.get("/metrics").status_code == 404

    def test_empty_allows_nobody(self, db_url: str) -> None:
        app = create_app(make_settings(db_url, metrics_clients=""))
        with TestClient(app, client=("127.0.0.1", 5000)) as client:
            assert client.get("/metrics").status_code == 404

    def test_scrapes_are_not_audited(self, db_url: str, session: Session) -> None:
        with TestClient(create_app(make_settings(db_url)), client=("127.0.0.1", 5000)) as client:
            client.get("/metrics")
        assert session.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 0
