"""The README documents what the code does: every setting, the two commands, every CLI command."""

import re
from collections.abc import Iterator
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from indicator_exchange.cli import app
from indicator_exchange.settings import Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


class TestReadme:
    def test_every_setting_is_documented(self) -> None:
        documented = set(re.findall(r"`(IX_[A-Z0-9_]+)`", README))
        expected = {f"IX_{name.upper()}" for name in Settings.model_fields}
        assert expected - documented == set()

    def test_no_documented_setting_is_unknown(self) -> None:
        documented = set(re.findall(r"\| `(IX_[A-Z0-9_]+)` \|", README))
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


def _walk(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group below ``group`` (Typer's own Click: groups are what have ``commands``)."""
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if hasattr(command, "commands"):
            yield from _walk(command, (*prefix, name))


def _named_commands(text: str) -> Iterator[list[str]]:
    """The command words after every ``indicator-exchange`` (up to the first argument, option or placeholder)."""
    for found in re.finditer(r"indicator-exchange((?: [a-z][a-z0-9-]*)+)", text):
        yield found.group(1).split()


def _unknown(words: list[str]) -> str | None:
    """The first word that names no command (``None`` if the words lead to a command)."""
    command: Any = get_command(app)
    for word in words:
        if not hasattr(command, "commands"):
            return None  # the rest are arguments
        if word not in command.commands:
            return word
        command = command.commands[word]
    return None


class TestCommandsNamed:
    def test_every_command_named_in_messages_and_readme_exists(self) -> None:
        texts = {"README.md": README} | {
            str(path.relative_to(ROOT)): path.read_text() for path in (ROOT / "indicator_exchange").rglob("*.py")
        }
        texts["Makefile"] = (ROOT / "Makefile").read_text()
        wrong = {
            f"{where}: indicator-exchange {' '.join(words)}"
            for where, text in texts.items()
            for words in _named_commands(text)
            if _unknown(words) is not None
        }
        assert wrong == set()

    def test_no_hyphenated_command_is_named_with_a_space(self) -> None:
        """`grant-revoke` written as "grant revoke" reads like a subcommand that does not exist."""
        sources = [README] + [path.read_text() for path in (ROOT / "indicator_exchange").rglob("*.py")]
        spaced = {" ".join(path[-1].split("-")) for path, _ in _walk(get_command(app)) if "-" in path[-1]}
        spaced -= {"api root"}  # prose: "an API root"
        assert {name for name in spaced for text in sources if re.search(rf"[`'\"]{name}\b", text)} == set()

    def test_a_wrong_command_name_is_caught(self) -> None:
        assert _unknown(["admin", "grant", "revoke"]) is None  # `grant` takes arguments: "revoke" is one
        assert _unknown(["admin", "grants"]) == "grants"
        assert _unknown(["admin", "source", "remove"]) == "remove"

    def test_every_command_and_option_has_help(self) -> None:
        missing = []
        for path, command in _walk(get_command(app)):
            if not (command.help or "").strip():
                missing.append(" ".join(path))
            for param in command.params:
                if not (getattr(param, "help", None) or "").strip():
                    missing.append(f"{' '.join(path)} {param.name}")
        assert missing == []

    def test_help_runs_for_every_command(self) -> None:
        runner = CliRunner()
        for path, _ in _walk(get_command(app)):
            result = runner.invoke(app, [*path, "--help"])
            assert result.exit_code == 0, (path, result.output)
            assert "Usage:" in result.output


class TestQuickStart:
    def test_it_says_where_the_cli_lives(self) -> None:
        assert ".venv/bin/indicator-exchange" in README
        assert "source .venv/bin/activate" in README

    def test_it_says_how_to_pick_the_demo_port(self) -> None:
        assert "make demo PORT=" in README
        assert "PORT ?= 8000" in (ROOT / "Makefile").read_text()
