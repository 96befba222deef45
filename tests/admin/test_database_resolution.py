"""Run from a directory without a database, a command names the database it resolved (and that it is the
default) and creates no file; a PostgreSQL URL is named by host and database, never by its password."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from indicator_exchange.settings import get_settings

# Every command that only reads (or needs an existing store) must leave no database file behind.
READ_ONLY = [
    ["serve"],
    ["db", "current"],
    ["db", "check"],
    ["db", "downgrade"],
    ["report", "--from", "2026-01-01", "--to", "2026-02-01"],
    ["export", "--collection", "distillation", "--format", "jsonl"],
    ["match", "-"],
    ["push", "-", "--as", "det"],
    ["sync", "--once"],
    ["admin", "api-root", "list"],
    ["admin", "collection", "list"],
    ["admin", "principal", "list"],
    ["admin", "grant-list"],
    ["admin", "key", "list"],
    ["admin", "audit", "list"],
    ["admin", "source", "list"],
]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with no database and no IX_DATABASE_URL, like a new user's second shell."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IX_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a))
def test_a_missing_default_database_is_named_not_created(elsewhere: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, input="")
    expected = str(elsewhere / "indicator-exchange.db")
    if args == ["db", "current"]:
        assert result.exit_code == 0, result.output
        assert "exists: False" in result.output
    else:
        assert result.exit_code == 2, result.output
        assert "does not exist" in result.output
    assert expected in result.output
    assert (
        "IX_DATABASE_URL is not set: the default is ./indicator-exchange.db in the working directory" in result.output
    )
    assert list(elsewhere.iterdir()) == []


def test_db_upgrade_says_which_file_it_created(elsewhere: Path) -> None:
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"the SQLite database {elsewhere / 'indicator-exchange.db'}" in result.output
    listed = CliRunner().invoke(cli, ["admin", "principal", "list"])
    assert (listed.exit_code, listed.output.strip()) == (0, "(none)")


def test_an_empty_database_says_so(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{elsewhere / 'other.db'}"
    (elsewhere / "other.db").touch()
    monkeypatch.setenv("IX_DATABASE_URL", url)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["admin", "principal", "list"])
    assert result.exit_code == 2
    assert f"the SQLite database {elsewhere / 'other.db'} (from IX_DATABASE_URL) is empty (no schema revision)" in (
        result.output
    )


def test_postgresql_is_named_by_host_and_database_never_the_password(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch, pg_admin_url: str
) -> None:
    from sqlalchemy.engine import make_url

    admin = make_url(pg_admin_url)
    url = admin.set(password="pw-never-printed", database="ix_no_such_database").render_as_string(hide_password=False)
    monkeypatch.setenv("IX_DATABASE_URL", url)
    get_settings.cache_clear()
    for args in (
        ["admin", "principal", "list"],
        ["db", "current"],
        ["report", "--from", "2026-01-01", "--to", "2026-01-02"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0, result.output
        assert f"the PostgreSQL database ix_no_such_database on {admin.host}" in result.output
        assert "pw-never-printed" not in result.output
