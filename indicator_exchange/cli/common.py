"""What every command module shares: settings, one transaction per command, errors as exit codes, printing.

Every module of this package is imported for any command (and for ``--help``), so none imports the store,
the settings (pydantic), Alembic or a service at module level: each command imports what it needs when it
runs. ``tests/cli/test_startup.py`` holds that line.
"""

import getpass
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from indicator_exchange.errors import ExchangeError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from indicator_exchange.settings import Settings

T = TypeVar("T")

SHOWN_REJECTIONS = 100  # rejected (or adjusted) lines `push` and `match` print; `--json` carries every one

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def load_settings() -> "Settings":
    from indicator_exchange.settings import get_settings

    return get_settings()


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_in_session(
    action: Callable[["Session"], T], settings: "Settings | None" = None, *, audit: str | None = None
) -> T:
    """Run one admin action in one transaction; a service error becomes a one-line message and exit 1.

    ``audit`` names a configuration change: it is recorded in the audit trail in the same transaction, with
    the result minus any secret, and the operating-system user as the operator.
    """
    from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope

    settings = settings or load_settings()
    engine = make_engine(settings.database_url)
    try:
        require_schema(settings)
        with session_scope(make_sessionmaker(engine)) as session:
            result = action(session)
            if audit is not None:
                from indicator_exchange.audit.service import record_command

                detail = json.dumps(_without_secrets(result), default=str)
                record_command(
                    session,
                    at=datetime.now(UTC),
                    command=f"indicator-exchange admin {audit}",
                    operator=_operator(),
                    detail=detail,
                )
            return result
    except ExchangeError as exc:
        fail(exc.message)
        raise AssertionError("unreachable") from None
    finally:
        engine.dispose()


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _without_secrets(data: object) -> object:
    if isinstance(data, dict):
        return {k: _without_secrets(v) for k, v in data.items() if k not in ("secret", "bearer")}
    if isinstance(data, list):
        return [_without_secrets(v) for v in data]
    return data


def require_schema(settings: "Settings") -> None:
    """Exit 2 unless the store exists and is at the code's head revision; never creates a database file."""
    from indicator_exchange.store import migrate

    problem = migrate.schema_problem(settings)
    if problem is not None:
        fail(problem, code=2)


def resolve_collection_id(session: "Session", key: str) -> uuid.UUID:
    """A local collection named by id or alias (the one resolver: ``catalog.resolve_collection``)."""
    from indicator_exchange.store import catalog

    return catalog.resolve_collection(session, key).id


def print_result(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    elif human is not None:
        typer.echo(human(data))
    elif isinstance(data, list):
        for item in data:
            typer.echo("  ".join(f"{k}={v}" for k, v in item.items() if v is not None))
        if not data:
            typer.echo("(none)")
    else:
        for key, value in data.items():
            typer.echo(f"{key}: {value}")


# --- serve -------------------------------------------------------------------------------------------


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``5m``, ``1h``, ``1d`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        value = int(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise typer.BadParameter(f"{text!r} is not a positive duration like 90s, 5m or 1h")
    return value
