"""The ``db`` group: Alembic migrations of the configured store."""

from typing import TYPE_CHECKING, Annotated

import typer

from indicator_exchange.cli.common import (
    JsonOpt,
    fail,
    load_settings,
    print_result,
)

if TYPE_CHECKING:
    from indicator_exchange.settings import Settings

db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create the database if needed and upgrade its schema (safe on a live database; transactional)."""
    from indicator_exchange.store import migrate

    settings = load_settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"{migrate.describe_database(settings)}: upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")] = "-1",
) -> None:
    """Downgrade the schema by one revision (or to REVISION)."""
    from indicator_exchange.store import migrate

    settings = load_settings()
    _require_database(settings)
    migrate.downgrade(settings.database_url, revision)
    typer.echo(f"{migrate.describe_database(settings)}: downgraded to {revision}")


@db_app.command("current")
def db_current(as_json: JsonOpt = False) -> None:
    """Show which database is configured, its revision and the code's head revision (read-only)."""
    from sqlalchemy.exc import OperationalError

    from indicator_exchange.store import migrate

    settings = load_settings()
    try:
        exists, current = migrate.current_revision_if_any(settings)
    except OperationalError as exc:
        fail(f"cannot open {migrate.describe_database(settings)}: {exc.orig}")
        return
    head = migrate.head_revision()
    print_result(
        {
            "database": migrate.describe_database(settings),
            "exists": exists,
            "current": current,
            "head": head,
            "up_to_date": current == head,
        },
        as_json,
    )


@db_app.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree (like `alembic check`); read-only."""
    from indicator_exchange.store import migrate

    settings = load_settings()
    _require_database(settings)
    try:
        migrate.check(settings.database_url)
    except Exception as exc:  # alembic raises its own error types here
        fail(f"schema check failed: {exc}")
    typer.echo("models and migrations agree")


def _require_database(settings: "Settings") -> None:
    """Exit 2 when the SQLite file is missing, rather than let a connection create an empty one."""
    from indicator_exchange.store import migrate

    path = migrate.sqlite_file(settings.database_url)
    if path is not None and not path.exists():
        fail(
            f"{migrate.describe_database(settings)} does not exist; create it with `indicator-exchange db upgrade`",
            code=2,
        )
