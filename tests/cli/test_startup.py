"""The CLI starts cheaply: importing it, or asking any command for ``--help``, loads none of the heavy stack.

Every ``indicator-exchange`` run (a ``sync --follow`` restarted after a crash, each test that shells out)
pays for what ``indicator_exchange.cli`` imports. The check is on ``sys.modules`` of a fresh interpreter,
not on a timing, so it holds on a loaded machine and fails as soon as a module-level import creeps back.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# What a command imports when it runs, never before: the ORM, migrations, the web stack, the settings
# (pydantic-settings), the database driver, the STIX library and the app's services and store.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "pydantic_settings",
    "psycopg",
    "stix2",
    "httpx",
    "indicator_exchange.settings",
    "indicator_exchange.store",
    "indicator_exchange.app",
    "indicator_exchange.admin.service",
    "indicator_exchange.sync.service",
    "indicator_exchange.reports.export",
)

PROBE = """
import json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["indicator-exchange", *json.loads(sys.argv[1])]
from indicator_exchange.cli import main
code = 0
if len(sys.argv) > 1:
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def _loaded_after(*args: str, cwd: Path | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IX_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return list(report["loaded"])


class TestStartup:
    def test_importing_the_cli_loads_nothing_heavy(self) -> None:
        assert _loaded_after() == []

    def test_the_top_level_help_loads_nothing_heavy(self) -> None:
        assert _loaded_after("--help") == []

    @pytest.mark.parametrize(
        "command",
        [
            ["serve"],
            ["sync"],
            ["report"],
            ["export"],
            ["push"],
            ["fingerprint"],
            ["detect"],
            ["match"],
            ["demo"],
            ["db", "current"],
            ["lifecycle", "show"],
            ["admin", "principal", "update"],
            ["admin", "audit", "list"],
            ["admin", "source", "create"],
        ],
        ids=" ".join,
    )
    def test_a_commands_help_loads_nothing_heavy(self, command: list[str]) -> None:
        assert _loaded_after(*command, "--help") == []

    def test_the_probe_sees_a_command_that_runs(self, tmp_path: Path) -> None:
        # The same probe on a command that does its work: the store and migrations are loaded then, so an
        # empty list above means the CLI deferred them, not that the probe is blind.
        assert "alembic" in _loaded_after("db", "current", "--json", cwd=tmp_path)

    def test_a_command_on_sqlite_loads_no_postgresql_driver_nor_web_stack(self, tmp_path: Path) -> None:
        loaded = _loaded_after("db", "current", "--json", cwd=tmp_path)
        assert not [m for m in loaded if m.split(".")[0] in ("psycopg", "fastapi", "starlette", "httpx")]
