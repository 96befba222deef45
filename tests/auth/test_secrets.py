"""Secrets never leave the key holder: not in logs, error bodies, the audit trail, key listings or the store."""

import base64
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from indicator_exchange.settings import get_settings
from indicator_exchange.store.models import Base
from tests.fixtures.factories import TAXII_ACCEPT, Key, envelope, make_collection, make_indicator, make_key


def _dump_tables(session: Session) -> str:
    """Every row of every table, as text."""
    session.rollback()
    dumped = []
    for table in Base.metadata.sorted_tables:
        rows = session.execute(text(f'SELECT * FROM "{table.name}"')).all()
        dumped.append(f"{table.name}: {rows!r}")
    session.rollback()
    return "\n".join(dumped)


def _exercise(client: TestClient, key: Key, admin: Key, collection: str) -> list[str]:
    """Requests that succeed, fail and misuse the secret; returns every response body."""
    url = f"/api1/collections/{collection}/objects/"
    secret = key.secret
    basic_secret_as_user = base64.b64encode(f"{secret}:x".encode()).decode()
    responses = [
        client.get(url, headers=key.basic),
        client.get(url, headers=key.bearer),
        client.post(url, headers=key.post, json=envelope(make_indicator(1))),
        client.get(url, headers=Key(key.principal, key.key_id, secret + "0").basic),  # wrong secret
        client.get(url, headers={"Authorization": f"Bearer {key.key_id}{secret}", **TAXII_ACCEPT}),  # malformed
        client.get(url, headers={"Authorization": f"Basic {basic_secret_as_user}", **TAXII_ACCEPT}),  # swapped
        client.get(url, params={"api_key": secret, "match[id]": secret}, headers=key.basic),  # secret in the query
        client.get(f"/api1/collections/{secret}/objects/", headers=key.basic),  # secret in the path
        client.get(f"{url}{secret}/", headers=key.basic),
        client.get("/api/v1/admin/keys", headers=admin.basic),
        client.get("/api/v1/admin/audit", params={"limit": 1000}, headers=admin.basic),
        client.get("/api/v1/admin/audit", headers=key.basic),  # not an admin
    ]
    return [r.text for r in responses]


class TestSecrets:
    def test_no_secret_in_logs_errors_audit_or_store(
        self, client: TestClient, session: Session, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection], write=[collection])
        admin = make_key(session, "ops", kind="admin", clearance="red")
        session.commit()

        bodies = _exercise(client, key, admin, str(collection))
        created = client.post("/api/v1/admin/keys", headers=admin.basic, json={"principal": "lab-a"}).json()
        new_secret = created["secret"]  # shown once, in the answer to the request that created it
        listed = client.get("/api/v1/admin/keys", headers=admin.basic).text
        audit = client.get("/api/v1/admin/audit", params={"limit": 1000}, headers=admin.basic).text

        store = _dump_tables(session)
        # The test's own HTTP client logs the URLs it requests (some carry the secret on purpose): not ours.
        server_logs = "\n".join(
            f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if not r.name.startswith("httpx")
        )
        for secret in (key.secret, admin.secret, new_secret):
            assert all(secret not in body for body in bodies)
            assert secret not in listed
            assert secret not in audit
            assert secret not in server_logs
            assert secret not in store
        assert "secret" not in listed
        assert "[redacted]" in audit  # the query parameter and the path carrying it were scrubbed

    def test_cli_key_listing_and_audit_hold_no_secret(
        self, session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("IX_DATABASE_URL", db_url)
        get_settings.cache_clear()
        try:
            runner = CliRunner()
            make_collection(session)
            session.commit()
            session.close()
            make = runner.invoke(cli, ["admin", "principal", "create", "lab-a", "--json"])
            assert make.exit_code == 0, make.output
            created = runner.invoke(cli, ["admin", "key", "create", "lab-a", "--json"])
            assert created.exit_code == 0, created.output
            secret = created.output.split('"secret": "')[1].split('"')[0]
            listed = runner.invoke(cli, ["admin", "key", "list", "--json"])
            audit = runner.invoke(cli, ["admin", "audit", "list", "--json"])
            assert listed.exit_code == audit.exit_code == 0
            assert secret not in listed.output
            assert secret not in audit.output
            assert "indicator-exchange admin key create" in audit.output  # the change itself is on record
            assert secret not in _dump_tables(session)
        finally:
            get_settings.cache_clear()
