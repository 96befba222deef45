"""The CLI's sharing-control commands: key rotate, principal update, audit list (and the old ones still work)."""

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.admin import service as admin
from indicator_exchange.cli import app as cli
from indicator_exchange.settings import get_settings
from indicator_exchange.store.models import ApiKey, AuditEvent
from tests.fixtures.factories import make_collection, make_key
from tests.ingest.test_api import detection

Invoke = Callable[..., Any]


@pytest.fixture
def run(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setenv("IX_DATABASE_URL", db_url)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        result = runner.invoke(cli, ["admin", *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    yield invoke
    get_settings.cache_clear()


class TestCli:
    def test_rotate_update_and_audit(self, run: Invoke, session: Session) -> None:
        invoke = run
        invoke("principal", "create", "lab-a", "--clearance", "green")
        key = invoke("key", "create", "lab-a")
        rotated = invoke("key", "rotate", key["key_id"], "--grace-hours", "0")
        assert rotated["replaces"]["key_id"] == key["key_id"]
        assert rotated["secret"] != key["secret"]
        old = session.execute(select(ApiKey).where(ApiKey.key_id == key["key_id"])).scalar_one()
        assert old.expires_at is not None  # grace 0: it expired at the rotation
        session.rollback()

        updated = invoke(
            "principal",
            "update",
            "lab-a",
            "--clearance",
            "red",
            "--requests-per-minute",
            "30",
            "--objects-per-day",
            "default",
            "--inactive",
        )
        assert (updated["clearance"], updated["requests_per_minute"], updated["objects_per_day"]) == ("red", 30, None)
        assert updated["is_active"] is False

        events = invoke("audit", "list")
        commands = [e["path"] for e in events]
        assert commands == [
            "indicator-exchange admin principal update",
            "indicator-exchange admin key rotate",
            "indicator-exchange admin key create",
            "indicator-exchange admin principal create",
        ]
        assert all(e["method"] == "CLI" for e in events)
        stored = session.execute(select(AuditEvent.detail)).scalars().all()
        assert not any(key["secret"] in (d or "") or rotated["secret"] in (d or "") for d in stored)

    def test_a_bad_limit_is_a_usage_error(self, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("IX_DATABASE_URL", db_url)
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(cli, ["admin", "principal", "update", "x", "--requests-per-minute", "-3"])
            assert result.exit_code == 2
        finally:
            get_settings.cache_clear()


def invoke_cli(*args: str) -> Any:
    """Run a command (IX_DATABASE_URL set by the caller); answers Click's result, stderr included in output."""
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("IX_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


class TestCollectionsByAlias:
    def test_grant_revoke_and_audit_take_an_alias(self, cli_env: str, session: Session) -> None:
        collection = make_collection(session, alias="feed")
        admin.create_principal(session, name="lab-a")
        session.commit()
        granted = invoke_cli("admin", "grant", "lab-a", "feed", "--read", "--json")
        assert granted.exit_code == 0, granted.output
        assert json.loads(granted.output)["collection_id"] == str(collection)
        listed = invoke_cli("admin", "audit", "list", "--collection", "feed", "--json")
        assert listed.exit_code == 0, listed.output
        assert isinstance(json.loads(listed.output), list)
        revoked = invoke_cli("admin", "grant-revoke", "lab-a", str(collection), "--json")
        assert revoked.exit_code == 0, revoked.output
        unknown = invoke_cli("admin", "grant", "lab-a", "no-such-feed", "--read")
        assert (unknown.exit_code, unknown.output.strip()) == (
            1,
            "error: there is no collection 'no-such-feed' (neither an id nor an alias)",
        )

    def test_an_empty_grant_names_the_real_command(self, cli_env: str, session: Session) -> None:
        make_collection(session, alias="feed")
        admin.create_principal(session, name="lab-a")
        session.commit()
        result = invoke_cli("admin", "grant", "lab-a", "feed")
        assert result.exit_code == 1
        assert "`indicator-exchange admin grant-revoke`" in result.output


class TestSaysWhatHappened:
    def test_sync_without_sources_says_so(self, cli_env: str) -> None:
        result = invoke_cli("sync", "--once")
        assert (result.exit_code, result.output.strip()) == (
            0,
            "no feed sources configured; add one with `indicator-exchange admin source create`",
        )

    def test_match_timestamps_end_in_z_in_csv_and_jsonl(self, cli_env: str, session: Session, tmp_path: Path) -> None:
        collection = make_collection(session)
        make_key(session, "det-1", kind="detector", clearance="red", read=[collection], write=[collection])
        session.commit()
        detections = tmp_path / "detections.ndjson"
        detections.write_text(json.dumps(detection()) + "\n")
        assert invoke_cli("push", str(detections), "--as", "det-1").exit_code == 0
        events = tmp_path / "events.ndjson"
        events.write_text(json.dumps({"timestamp": "2026-03-01T12:00:00+00:00", "source_ip": "46.91.113.57"}) + "\n")
        as_jsonl = invoke_cli("match", str(events))
        as_csv = invoke_cli("match", str(events), "--format", "csv")
        assert as_jsonl.exit_code == 0, as_jsonl.output
        assert as_csv.exit_code == 0, as_csv.output
        jsonl_time = json.loads(as_jsonl.stdout.splitlines()[0])["timestamp"]
        csv_row = next(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert jsonl_time == csv_row["timestamp"] == "2026-03-01T12:00:00Z"
        assert as_csv.stderr.strip() == "1 event, 1 match against 1 indicator"


class TestCollectionValidation:
    def test_create_update_and_list_the_policy(self, run: Invoke) -> None:
        run("api-root", "create", "feeds", "--title", "F")
        created = run("collection", "create", "--api-root", "feeds", "--title", "C", "--alias", "c")
        assert created["validation"] == "strict"
        verbatim = run("collection", "create", "--api-root", "feeds", "--title", "V", "--validation", "basic")
        assert verbatim["validation"] == "basic"
        assert run("collection", "update", "c", "--validation", "basic")["validation"] == "basic"
        assert run("collection", "update", verbatim["id"], "--validation", "strict")["validation"] == "strict"
        listed = {c["title"]: c["validation"] for c in run("collection", "list")}
        assert listed == {"C": "basic", "V": "strict"}

    def test_an_unknown_policy_is_refused_with_the_choices(self, run: Invoke) -> None:
        run("api-root", "create", "feeds", "--title", "F")
        result = CliRunner().invoke(
            cli, ["admin", "collection", "create", "--api-root", "feeds", "--title", "C", "--validation", "lax"]
        )
        assert result.exit_code != 0
        assert "strict or basic" in result.output
