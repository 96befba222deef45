"""The audit trail: one row per request, denied and failed ones included; append-only; the CLI listing."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.cli import app as cli
from indicator_exchange.services import services_of
from indicator_exchange.settings import get_settings
from indicator_exchange.store.engine import make_sessionmaker
from indicator_exchange.store.models import AuditEvent
from indicator_exchange.taxii import service as taxii_service
from tests.conftest import ROOT, empty_database, engine_for, make_settings
from tests.fixtures.clock import FakeClock
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url


def _events(session: Session) -> list[AuditEvent]:
    events = list(session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars())
    session.rollback()
    return events


class TestReads:
    def test_a_read_records_who_what_how_much_and_the_range_served(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session, alias="feed")
        writer = make_key(session, "writer", write=[collection])
        reader = make_key(session, "reader", read=[collection], clearance="green")
        session.commit()
        client.post(objects_url(collection), headers=writer.post, json=envelope(*(make_indicator(n) for n in range(3))))
        response = client.get(
            "/api1/collections/feed/objects/", headers=reader.basic, params={"match[type]": "indicator", "limit": "2"}
        )
        event = _events(session)[-1]
        assert (event.principal_name, event.key_id, event.method) == ("reader", reader.key_id, "GET")
        assert event.route == "/{api_root}/collections/{collection_id}/objects/"
        assert (event.api_root, event.collection_id) == ("api1", collection)  # the alias resolved to the id
        assert event.filters == {"match[type]": ["indicator"], "limit": ["2"]}
        assert (event.status_code, event.outcome, event.object_count) == (200, "ok", 2)
        assert event.client_addr == "testclient"
        assert event.clearance == 1
        assert event.default_tlp == 2
        first, last = response.headers["X-TAXII-Date-Added-First"], response.headers["X-TAXII-Date-Added-Last"]
        assert taxii_service.format_timestamp_us(event.date_added_first or 0) == first
        assert taxii_service.format_timestamp_us(event.date_added_last or 0) == last

    def test_a_write_records_the_objects_accepted(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        writer = make_key(session, "writer", write=[collection])
        session.commit()
        client.post(
            objects_url(collection), headers=writer.post, json=envelope(make_indicator(1), {"type": "nonsense"})
        )
        event = _events(session)[-1]
        assert (event.method, event.status_code, event.object_count, event.collection_id) == (
            "POST",
            202,
            1,
            collection,
        )

    def test_health_and_docs_are_not_audited(self, client: TestClient, session: Session) -> None:
        client.get("/healthz")
        client.get("/openapi.json")
        assert _events(session) == []


class TestDenied:
    def test_unauthenticated_revoked_and_refused_requests_are_audited(
        self, client: TestClient, session: Session
    ) -> None:
        collection = make_collection(session)
        other = make_collection(session, title="Other")
        reader = make_key(session, "reader", read=[collection])
        revoked = make_key(session, "gone", read=[collection])
        admin.revoke_key(session, key_id=revoked.key_id)
        session.commit()
        client.get(objects_url(collection))
        client.get(objects_url(collection), headers=revoked.basic)
        client.get(objects_url(other), headers=reader.basic)
        client.get(f"{objects_url(collection)}indicator--00000000-0000-4000-8000-000000000000/", headers=reader.basic)
        client.get("/api1/collections/no-such-collection/objects/", headers=reader.basic)
        rows = [(e.status_code, e.outcome, e.principal_name, e.key_id, e.collection_id) for e in _events(session)]
        assert rows == [
            (401, "denied", None, None, collection),
            (401, "denied", "gone", revoked.key_id, collection),
            (404, "denied", "reader", reader.key_id, other),  # a 404 to the client (non-disclosure)
            (404, "not-found", "reader", reader.key_id, collection),
            (404, "not-found", "reader", reader.key_id, None),
        ]
        details = [e.detail or "" for e in _events(session)]
        assert "key revoked" in details[1]
        assert "no grant on this collection" in details[2]

    def test_a_request_that_fails_and_rolls_back_is_audited(
        self, db_url: str, session: Session, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        collection = make_collection(session)
        writer = make_key(session, "writer", write=[collection])
        session.commit()

        def explode(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("the store failed")

        monkeypatch.setattr(taxii_service.store, "write_versions", explode)
        with TestClient(create_app(make_settings(db_url)), raise_server_exceptions=False) as client:
            response = client.post(objects_url(collection), headers=writer.post, json=envelope(make_indicator(1)))
        assert response.status_code == 500
        event = _events(session)[-1]
        assert (event.status_code, event.outcome, event.principal_name) == (500, "error", "writer")
        assert session.execute(text("SELECT count(*) FROM object_version")).scalar_one() == 0


class TestAppendOnly:
    @pytest.fixture
    def pg_session(self, pg_url: str) -> Iterator[Session]:
        with make_sessionmaker(engine_for(pg_url))() as session:
            yield session
        empty_database(pg_url)

    def test_postgresql_refuses_to_update_or_delete_audit_rows(self, pg_session: Session) -> None:
        pg_session.add(AuditEvent(at=datetime.now(UTC), method="GET", path="/x", status_code=200, outcome="ok"))
        pg_session.commit()
        with pytest.raises(DBAPIError, match="append-only"):
            pg_session.execute(update(AuditEvent).values(status_code=204))
        pg_session.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            pg_session.execute(delete(AuditEvent))
        pg_session.rollback()
        assert pg_session.execute(select(AuditEvent.status_code)).scalars().all() == [200]

    def test_no_code_path_changes_or_deletes_audit_rows(self) -> None:
        package = ROOT / "indicator_exchange"
        pattern = re.compile(r"(update|delete)\(\s*AuditEvent|(UPDATE|DELETE\s+FROM)\s+\"?audit_event", re.IGNORECASE)
        offenders = [str(p) for p in package.rglob("*.py") if pattern.search(Path(p).read_text())]
        assert offenders == []


class TestConfigurationChanges:
    def test_admin_api_changes_are_audited_with_what_changed(self, client: TestClient, session: Session) -> None:
        make_collection(session)
        ops = make_key(session, "ops", kind="admin")
        session.commit()
        client.post("/api/v1/admin/principals", headers=ops.basic, json={"name": "lab-b", "clearance": "green"})
        client.patch("/api/v1/admin/principals/lab-b", headers=ops.basic, json={"clearance": "amber"})
        details = [(e.method, e.route, e.detail) for e in _events(session)]
        assert details == [
            ("POST", "/api/v1/admin/principals", "create principal lab-b (partner, clearance green)"),
            ("PATCH", "/api/v1/admin/principals/{name}", "update principal lab-b: {'clearance': 'amber'}"),
        ]


class TestCliListing:
    @pytest.fixture
    def runner(self, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
        monkeypatch.setenv("IX_DATABASE_URL", db_url)
        get_settings.cache_clear()
        yield CliRunner()
        get_settings.cache_clear()

    def _seed(self, client: TestClient, session: Session) -> tuple[Key, Key]:
        collection = make_collection(session)
        a = make_key(session, "lab-a", read=[collection])
        b = make_key(session, "lab-b", read=[collection])
        session.commit()
        session.close()
        return a, b

    def test_list_filters_by_principal_and_since(self, client: TestClient, session: Session, runner: CliRunner) -> None:
        a, b = self._seed(client, session)
        clock = FakeClock(datetime.now(UTC) - timedelta(hours=3))
        services_of(client.app).clock = clock
        client.get("/api1/collections/", headers=a.basic)  # three hours ago
        clock.now = datetime.now(UTC)
        client.get("/api1/collections/", headers=a.basic)
        client.get("/api1/collections/", headers=b.basic)
        everything = runner.invoke(cli, ["admin", "audit", "list", "--json"])
        recent_a = runner.invoke(cli, ["admin", "audit", "list", "--principal", "lab-a", "--since", "1h", "--json"])
        assert everything.exit_code == recent_a.exit_code == 0, everything.output
        assert everything.output.count('"principal_name"') == 3
        assert recent_a.output.count('"principal_name": "lab-a"') == 1
        assert '"lab-b"' not in recent_a.output

    def test_human_output_is_one_line_per_event(self, client: TestClient, session: Session, runner: CliRunner) -> None:
        a, _ = self._seed(client, session)
        client.get("/api1/collections/", headers=a.basic)
        client.get("/api1/collections/")
        listed = runner.invoke(cli, ["admin", "audit", "list"])
        assert listed.exit_code == 0
        lines = listed.output.strip().splitlines()
        assert len(lines) == 2
        assert " 401 denied" in lines[0]
        assert "lab-a" in lines[1]
