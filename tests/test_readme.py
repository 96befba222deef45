"""The README documents what the code does: every setting, the two commands, every CLI command."""

import re

from typer.main import get_command

from indicator_exchange.cli import app
from indicator_exchange.settings import Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


class TestReadme:
    def test_every_setting_is_documented(self) -> None:
        documented = set(re.findall(r"`(IX_[A-Z_]+)`", README))
        expected = {f"IX_{name.upper()}" for name in Settings.model_fields}
        assert expected - documented == set()

    def test_no_documented_setting_is_unknown(self) -> None:
        documented = set(re.findall(r"\| `(IX_[A-Z_]+)` \|", README))
        expected = {f"IX_{name.upper()}" for name in Settings.model_fields}
        assert documented - expected == set()

    def test_the_two_commands_are_the_ones_ci_runs(self) -> None:
        assert "make demo" in README
        assert "make test" in README
        assert "make test" in (ROOT / ".ci" / "run").read_text()

    def test_every_top_level_command_is_documented(self) -> None:
        command = get_command(app)
        names = set(command.commands)  # type: ignore[attr-defined]
        missing = {name for name in names if f"indicator-exchange {name}" not in README}
        assert missing == set()
