"""Alembic, driven from code: ``indicator-exchange db ...``, ``serve``'s schema check and the tests."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from indicator_exchange.settings import Settings
from indicator_exchange.store.engine import is_sqlite, make_engine, normalise_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "-1") -> None:
    command.downgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raise if the models and the migrations disagree (``alembic check``)."""
    command.check(alembic_config(url))


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def sqlite_file(url: str) -> Path | None:
    """The absolute file of a SQLite URL (relative paths resolve against the working directory), or ``None``
    for an in-memory database or a non-SQLite URL."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def describe_database(settings: Settings) -> str:
    """How messages name the store: SQLite's absolute file, PostgreSQL's host and database, never a password;
    and, for the default, where it lives — a new user who ran a command elsewhere must see which file it was."""
    url = settings.database_url
    path = sqlite_file(url)
    if path is not None:
        name = f"the SQLite database {path}"
    elif is_sqlite(url):
        name = "an in-memory SQLite database"
    else:
        parsed = make_url(url)
        where = f"{parsed.host or 'localhost'}{f':{parsed.port}' if parsed.port else ''}"
        backend = "PostgreSQL" if parsed.get_backend_name() == "postgresql" else parsed.get_backend_name()
        name = f"the {backend} database {parsed.database or '(default)'} on {where}"
    if "database_url" not in settings.model_fields_set:
        name += (
            " (IX_DATABASE_URL is not set: the default is ./indicator-exchange.db in the working directory; "
            "run from the directory that holds your database or set IX_DATABASE_URL)"
        )
    else:
        name += " (from IX_DATABASE_URL)"
    return name


def current_revision_if_any(settings: Settings) -> tuple[bool, str | None]:
    """Whether the store exists, and its revision: a missing SQLite file is reported, never created."""
    path = sqlite_file(settings.database_url)
    if path is not None and not path.exists():
        return False, None
    engine = make_engine(settings.database_url)
    try:
        return True, current_revision(engine)
    finally:
        engine.dispose()


def schema_problem(settings: Settings) -> str | None:
    """Why the configured store cannot serve this code (missing, unreachable, not at head), or ``None``.

    Read-only: commands that only read (``serve``'s check, ``db current``, reports, exports, lists) call this
    first, so a command run in the wrong directory leaves no empty database file behind.
    """
    name = describe_database(settings)
    try:
        exists, current = current_revision_if_any(settings)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "cannot connect"
        return f"cannot open {name}: {reason}"
    if not exists:
        return (
            f"{name} does not exist; create it with `indicator-exchange db upgrade` (or `make demo`) "
            "only if this is where you want it"
        )
    head = head_revision()
    if current != head:
        state = f"at schema revision {current}" if current else "empty (no schema revision)"
        return f"{name} is {state}, not {head}; run `indicator-exchange db upgrade` first"
    return None
