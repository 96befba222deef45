"""Streaming exports: what goes out at which clearance, in every format, from the CLI and over HTTP."""

import csv
import io
import json
import tracemalloc
import uuid

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from stix2validator import ValidationOptions, validate_string
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli_app
from indicator_exchange.reports import export
from indicator_exchange.settings import Settings, get_settings
from indicator_exchange.stix.markings import TLP2_MARKING_IDS
from indicator_exchange.store import objects as store
from indicator_exchange.store.models import AuditEvent
from tests.fixtures.factories import Key, make_collection, make_indicator, make_key
from tests.fixtures.live_server import LiveServer, live_server, memory_kib, reset_peak_rss
from tests.reports.scenario import Scenario

# Latest versions in the scenario's collection by effective TLP: CLEAR 1, GREEN 5, AMBER 4, AMBER+STRICT 1.
AT_GREEN, AT_AMBER, EVERYTHING = 6, 10, 11


@pytest.fixture
def run_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IX_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()

    def invoke(*args: str):
        return CliRunner().invoke(cli_app, ["export", *args])

    yield invoke
    get_settings.cache_clear()


def _objects(bundle_text: str) -> list[dict[str, object]]:
    bundle = json.loads(bundle_text)
    assert bundle["type"] == "bundle"
    assert bundle["id"].startswith("bundle--")
    return [o for o in bundle["objects"] if o["id"] not in TLP2_MARKING_IDS.values()]


@pytest.mark.parametrize("backend", ["sqlite"])
class TestExportCli:
    def test_default_clearance_is_green_and_says_what_it_withheld(self, scenario: Scenario, run_cli, tmp_path) -> None:
        target = tmp_path / "out.json"
        result = run_cli("--collection", "indicators", "--output", str(target))
        assert result.exit_code == 0, result.output
        objects = _objects(target.read_text())
        assert len(objects) == AT_GREEN
        # The summary counts what the bundle holds: the objects and the five TLP 2.0 definitions before them.
        held = len(json.loads(target.read_text())["objects"])
        assert held == AT_GREEN + len(TLP2_MARKING_IDS)
        assert f"exported {held} objects" in result.output
        assert f"{EVERYTHING - AT_GREEN} above it withheld" in result.output
        assert "TLP:GREEN" in result.output

    def test_bundle_is_valid_stix(self, scenario: Scenario, run_cli) -> None:
        result = run_cli("--collection", str(scenario.collection), "--type", "indicator,relationship")
        assert result.exit_code == 0, result.output
        text = result.stdout
        validation = validate_string(text, ValidationOptions(version="2.1", strict=False))
        assert validation.is_valid, [str(e) for r in validation.object_results for e in r.errors]

    @pytest.mark.parametrize(
        ("args", "count"),
        [
            (["--clearance", "amber"], AT_AMBER),
            (["--clearance", "red"], EVERYTHING),
            (["--as", "lab-b"], AT_GREEN),
            (["--as", "lab-a"], AT_AMBER),
            (["--as", "root"], EVERYTHING),
            (["--type", "indicator"], 4),
            (["--clearance", "red", "--type", "indicator", "--type", "campaign"], 8),
            (["--clearance", "red", "--all-versions"], EVERYTHING + 3),
            (["--since", "2099-01-01"], 0),
        ],
    )
    def test_filters_and_clearances(self, scenario: Scenario, run_cli, args: list[str], count: int) -> None:
        result = run_cli("--collection", "indicators", "--format", "jsonl", "--page-size", "3", *args)
        assert result.exit_code == 0, result.output
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        assert len(lines) == count
        assert all(json.loads(line)["type"] for line in lines)

    def test_as_a_principal_without_a_grant_is_refused(self, scenario: Scenario, run_cli) -> None:
        result = run_cli("--collection", "indicators", "--as", "det-2")
        assert result.exit_code == 1
        assert "no read grant" in result.output

    def test_clearance_and_as_exclude_each_other(self, scenario: Scenario, run_cli) -> None:
        result = run_cli("--collection", "indicators", "--as", "lab-a", "--clearance", "red")
        assert result.exit_code == 2

    def test_csv_rows(self, scenario: Scenario, run_cli) -> None:
        result = run_cli("--collection", "indicators", "--format", "csv", "--clearance", "red", "--type", "indicator")
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert len(rows) == 7
        assert sorted(r["kind"] for r in rows) == sorted(
            ["proxy_ip"] * 4 + ["prompt_signature"] * 2 + ["account_pattern"]
        )
        assert {r["tlp"] for r in rows} == {"clear", "green", "amber", "amber+strict"}
        revoked = [r for r in rows if r["revoked"] == "true"]
        assert [r["name"] for r in revoked] == ["proxy 2"]


class TestExportHttp:
    def test_compliance_streams_a_bundle(self, client: TestClient, scenario: Scenario) -> None:
        response = client.get(
            "/api/v1/export",
            headers=scenario.keys["compliance"].bearer,
            params={"collection": str(scenario.collection)},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/stix+json;version=2.1"
        assert "attachment" in response.headers["content-disposition"]
        assert len(_objects(response.text)) == EVERYTHING

    @pytest.mark.parametrize("backend", ["sqlite"])
    def test_the_audit_trail_records_what_left(self, client: TestClient, scenario: Scenario, session: Session) -> None:
        response = client.get(
            "/api/v1/export",
            headers=scenario.keys["compliance"].bearer,
            params={"collection": "indicators", "format": "csv"},
        )
        assert response.status_code == 200
        session.rollback()
        event = (
            session.execute(
                select(AuditEvent).where(AuditEvent.path == "/api/v1/export").order_by(AuditEvent.id.desc())
            )
            .scalars()
            .first()
        )
        assert event is not None
        assert (event.principal_name, event.status_code, event.object_count) == ("auditor", 200, EVERYTHING)
        assert event.collection_id == scenario.collection

    @pytest.mark.parametrize("backend", ["sqlite"])
    def test_clearance_of_the_caller_applies(self, client: TestClient, scenario: Scenario) -> None:
        response = client.get(
            "/api/v1/export",
            headers=scenario.keys["admin"].bearer,
            params={"collection": "indicators", "format": "jsonl", "type": "indicator"},
        )
        assert response.status_code == 200
        assert len(response.text.splitlines()) == 7

    @pytest.mark.parametrize("backend", ["sqlite"])
    @pytest.mark.parametrize(("who", "status"), [("lab-a", 403), ("det-1", 403), ("compliance-amber", 403)])
    def test_who_may_not_export(self, client: TestClient, scenario: Scenario, who: str, status: int) -> None:
        response = client.get("/api/v1/export", headers=scenario.keys[who].bearer, params={"collection": "indicators"})
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"

    @pytest.mark.parametrize("backend", ["sqlite"])
    def test_unknown_collection_and_format(self, client: TestClient, scenario: Scenario) -> None:
        headers = scenario.keys["admin"].bearer
        assert client.get("/api/v1/export", headers=headers, params={"collection": "nope"}).status_code == 404
        bad = client.get("/api/v1/export", headers=headers, params={"collection": "indicators", "format": "xml"})
        assert bad.status_code == 400


def _fill(sessions: sessionmaker[Session], count: int) -> uuid.UUID:
    with sessions() as session:
        collection = make_collection(session, title=f"bulk {count}")
        session.commit()
        for start in range(0, count, 1000):
            batch = [make_indicator(n) for n in range(start, min(start + 1000, count))]
            store.lock_collection(session, collection)
            store.write_versions(
                session,
                collection,
                [
                    store.NewVersion(
                        stix_id=str(o["id"]),
                        stix_type="indicator",
                        spec_version="2.1",
                        version=n,
                        modified=str(o["modified"]),
                        tlp=1,
                        created_by_ref=None,
                        revoked=False,
                        raw=orjson.dumps(o).decode(),
                    )
                    for n, o in enumerate(batch)
                ],
                now_us=1,
                added_by=None,
            )
            session.commit()
    return collection


@pytest.mark.parametrize("backend", ["sqlite"])
class TestExportMemory:
    def test_peak_memory_does_not_grow_with_the_collection(self, sessions: sessionmaker[Session]) -> None:
        peaks = []
        for count in (300, 3000):
            collection_id = _fill(sessions, count)
            with sessions() as session:
                collection = export.resolve_collection(session, str(collection_id))
                plan = export.ExportRequest(collection=collection, clearance=4, page_size=100)
                stats = export.ExportStats()
                tracemalloc.start()
                written = sum(len(chunk) for chunk in export.stream(session, plan, "stix", stats))
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            assert stats.objects == count + len(TLP2_MARKING_IDS)  # the bundle's definitions count too
            assert written > count * 300
        assert peaks[1] < peaks[0] * 1.5, peaks


def _peak_growth_kib(server: LiveServer, key: Key, collection: uuid.UUID, count: int) -> int:
    """How far the server's resident memory rose above where it started while streaming one export."""
    reset_peak_rss(server.pid)
    before = memory_kib(server.pid)["VmRSS"]
    received = 0
    with httpx.stream(
        "GET", f"{server.base}/api/v1/export", headers=key.bearer, params={"collection": str(collection)}, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes():
            received += len(chunk)
    assert received > count * 300
    return memory_kib(server.pid)["VmHWM"] - before


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
class TestExportMemoryLive:
    """Over HTTP, on PostgreSQL, against ``serve``: the bundle streams, so the server's peak resident memory
    does not grow with the collection. Buffering 20,000 objects (about 8 MB of JSON, more as rows) shows."""

    SMALL, LARGE = 2_000, 20_000

    def test_peak_rss_does_not_grow_with_the_collection(self, db_url: str, sessions: sessionmaker[Session]) -> None:
        small, large = _fill(sessions, self.SMALL), _fill(sessions, self.LARGE)
        with sessions() as session:
            key = make_key(session, "auditor", kind="compliance", clearance="red", read=[small, large])
            session.commit()
        with live_server(db_url) as server:
            _peak_growth_kib(server, key, small, self.SMALL)  # warm-up: code, caches and pools are loaded
            growth = {
                count: _peak_growth_kib(server, key, found, count)
                for count, found in ((self.SMALL, small), (self.LARGE, large))
            }
        print(f"peak RSS growth (KiB) by objects exported: {growth}")
        assert growth[self.LARGE] < growth[self.SMALL] + 4 * 1024, growth
