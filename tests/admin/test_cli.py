"""The CLI's sharing-control commands: key rotate, principal update, audit list (and the old ones still work)."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from indicator_exchange.settings import get_settings
from indicator_exchange.store.models import ApiKey, AuditEvent

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

        updated = invoke("principal", "update", "lab-a", "--clearance", "red", "--requests-per-minute", "30",
                         "--objects-per-day", "default", "--inactive")  # fmt: skip
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
