"""The ``indicator-exchange`` command: serve, db, admin, demo (and the ingest/sync/report commands)."""

import dataclasses
import getpass
import json
import os
import shlex
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.errors import ExchangeError
from indicator_exchange.runtime import tune_garbage_collector
from indicator_exchange.settings import DEMO_COMMUNITY_KEY, Settings, get_settings
from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope
from indicator_exchange.wording import plural

T = TypeVar("T")

app = typer.Typer(
    help="indicator-exchange: share STIX 2.1 threat indicators over TAXII 2.1.\n\n"
    "Configuration comes from IX_* environment variables (see the README). IX_DATABASE_URL selects the store; "
    "without it, ./indicator-exchange.db in the working directory (`indicator-exchange db current` shows which).\n\n"
    "Every command has --help: indicator-exchange COMMAND --help.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
admin_app = typer.Typer(help="Manage API roots, collections, principals, grants and keys.", no_args_is_help=True)
root_app = typer.Typer(help="TAXII API roots.", no_args_is_help=True)
collection_app = typer.Typer(help="TAXII collections.", no_args_is_help=True)
principal_app = typer.Typer(help="Principals: partners, detectors, compliance, admins.", no_args_is_help=True)
key_app = typer.Typer(help="API keys (the secret is shown once, at creation).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail of requests and configuration changes.", no_args_is_help=True)
source_app = typer.Typer(help="Partner TAXII feeds to pull from (or push to).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(root_app, name="api-root")
admin_app.add_typer(collection_app, name="collection")
admin_app.add_typer(principal_app, name="principal")
admin_app.add_typer(key_app, name="key")
admin_app.add_typer(audit_app, name="audit")
admin_app.add_typer(source_app, name="source")

SHOWN_REJECTIONS = 100  # rejected (or adjusted) lines `push` and `match` print; `--json` carries every one

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _settings() -> Settings:
    return get_settings()


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_in_session(action: Callable[[Session], T], settings: Settings | None = None, *, audit: str | None = None) -> T:
    """Run one admin action in one transaction; a service error becomes a one-line message and exit 1.

    ``audit`` names a configuration change: it is recorded in the audit trail in the same transaction, with
    the result minus any secret, and the operating-system user as the operator.
    """
    settings = settings or _settings()
    engine = make_engine(settings.database_url)
    try:
        _require_schema(settings)
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
        _fail(exc.message)
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


def _require_schema(settings: Settings) -> None:
    """Exit 2 unless the store exists and is at the code's head revision; never creates a database file."""
    problem = migrate.schema_problem(settings)
    if problem is not None:
        _fail(problem, code=2)


def _collection_id(session: Session, key: str) -> uuid.UUID:
    """A local collection named by id or alias (the one resolver: ``catalog.resolve_collection``)."""
    from indicator_exchange.store import catalog

    return catalog.resolve_collection(session, key).id


def _print(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; TAXII requires HTTPS off loopback.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (stateless; share the database).")] = 1,
    tls_cert: Annotated[str | None, typer.Option(help="PEM certificate: serve HTTPS directly.")] = None,
    tls_key: Annotated[str | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the TAXII 2.1 API, the ingest API and the docs (OpenAPI at /docs)."""
    from indicator_exchange import serving

    settings = _settings()
    _require_schema(settings)
    if bool(tls_cert) != bool(tls_key):
        _fail("--tls-cert and --tls-key go together")
    if workers < 1:
        _fail("--workers must be at least 1")
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback and settings.community_key.get_secret_value() == DEMO_COMMUNITY_KEY:
        _fail("refusing to serve off loopback with the demo community key; set IX_COMMUNITY_KEY")
    if not tls_cert and not loopback:
        typer.echo(
            "warning: serving plain HTTP off loopback; TAXII 2.1 requires HTTPS (use --tls-cert/--tls-key "
            "or a TLS-terminating proxy)",
            err=True,
        )
    if settings.db_pool_size is not None:
        typer.echo(
            "warning: IX_DB_POOL_SIZE is deprecated; set IX_DB_CONNECTIONS_PER_WORKER (now "
            f"{settings.connections_per_worker})",
            err=True,
        )
    try:
        if tls_cert and tls_key:
            serving.check_tls(tls_cert, tls_key)
        warning = serving.check_connection_budget(settings, workers)
    except serving.StartupRefused as exc:
        _fail(str(exc))
        return
    if warning:
        typer.echo(warning, err=True)
    serving.run(
        settings, host=host, port=port, workers=workers, tls_cert=tls_cert, tls_key=tls_key, log_level=log_level
    )


# --- db ----------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create the database if needed and upgrade its schema (safe on a live database; transactional)."""
    settings = _settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"{migrate.describe_database(settings)}: upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")] = "-1",
) -> None:
    """Downgrade the schema by one revision (or to REVISION)."""
    settings = _settings()
    _require_database(settings)
    migrate.downgrade(settings.database_url, revision)
    typer.echo(f"{migrate.describe_database(settings)}: downgraded to {revision}")


@db_app.command("current")
def db_current(as_json: JsonOpt = False) -> None:
    """Show which database is configured, its revision and the code's head revision (read-only)."""
    settings = _settings()
    try:
        exists, current = migrate.current_revision_if_any(settings)
    except OperationalError as exc:
        _fail(f"cannot open {migrate.describe_database(settings)}: {exc.orig}")
        return
    head = migrate.head_revision()
    _print(
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
    settings = _settings()
    _require_database(settings)
    try:
        migrate.check(settings.database_url)
    except Exception as exc:  # alembic raises its own error types here
        _fail(f"schema check failed: {exc}")
    typer.echo("models and migrations agree")


def _require_database(settings: Settings) -> None:
    """Exit 2 when the SQLite file is missing, rather than let a connection create an empty one."""
    path = migrate.sqlite_file(settings.database_url)
    if path is not None and not path.exists():
        _fail(
            f"{migrate.describe_database(settings)} does not exist; create it with `indicator-exchange db upgrade`",
            code=2,
        )


# --- admin -------------------------------------------------------------------------------------------


@root_app.command("create")
def api_root_create(
    name: Annotated[str, typer.Argument(help="URL segment of the API root, e.g. 'lab-feeds'.")],
    title: Annotated[str, typer.Option(help="Human title.")],
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API root, served at /NAME/."""
    _print(
        run_in_session(
            lambda s: admin.create_api_root(s, name=name, title=title, description=description),
            audit="api-root create",
        ),
        as_json,
    )


@root_app.command("list")
def api_root_list(as_json: JsonOpt = False) -> None:
    """List API roots."""
    _print(run_in_session(admin.list_api_roots), as_json)


VALIDATION_HELP = (
    "strict (STIX 2.1 validation: invalid objects are refused) | basic (common properties only; stored as received)."
)


@collection_app.command("create")
def collection_create(
    api_root: Annotated[str, typer.Option(help="API root name.")],
    title: Annotated[str, typer.Option(help="Human title.")],
    id: Annotated[uuid.UUID | None, typer.Option(help="Collection id (default: random UUID).")] = None,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    alias: Annotated[str | None, typer.Option(help="URL alias, usable in place of the id.")] = None,
    default_tlp: Annotated[
        str, typer.Option(help="TLP for unmarked objects: clear|green|amber|amber+strict|red.")
    ] = "amber",
    validation: Annotated[str, typer.Option(help=VALIDATION_HELP)] = "strict",
    as_json: JsonOpt = False,
) -> None:
    """Create a collection in an API root."""
    _print(
        run_in_session(
            lambda s: admin.create_collection(
                s,
                api_root=api_root,
                title=title,
                collection_id=id,
                description=description,
                alias=alias,
                default_tlp=default_tlp,
                validation=validation,
            ),
            audit="collection create",
        ),
        as_json,
    )


@collection_app.command("update")
def collection_update(
    collection: Annotated[str, typer.Argument(help="Collection id or alias.")],
    validation: Annotated[str | None, typer.Option(help=VALIDATION_HELP)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a collection's validation policy."""
    _print(
        run_in_session(
            lambda s: admin.update_collection(s, key=collection, validation=validation), audit="collection update"
        ),
        as_json,
    )


@collection_app.command("list")
def collection_list(
    api_root: Annotated[str | None, typer.Option(help="Only this API root.")] = None, as_json: JsonOpt = False
) -> None:
    """List collections."""
    _print(run_in_session(lambda s: admin.list_collections(s, api_root)), as_json)


@principal_app.command("create")
def principal_create(
    name: Annotated[str, typer.Argument(help="Unique principal name.")],
    kind: Annotated[str, typer.Option(help="partner | detector | compliance | admin.")] = "partner",
    organisation: Annotated[str | None, typer.Option(help="Organisation name.")] = None,
    identity: Annotated[str | None, typer.Option(help="STIX identity id (default: derived from the name).")] = None,
    clearance: Annotated[str, typer.Option(help="TLP clearance: clear|green|amber|amber+strict|red.")] = "amber",
    requests_per_minute: Annotated[int | None, typer.Option(help="Rate limit per key (default: server's).")] = None,
    objects_per_day: Annotated[int | None, typer.Option(help="Daily object quota per key (default: server's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a principal."""
    _print(
        run_in_session(
            lambda s: admin.create_principal(
                s,
                name=name,
                kind=kind,
                organisation=organisation,
                identity_ref=identity,
                clearance=clearance,
                requests_per_minute=requests_per_minute,
                objects_per_day=objects_per_day,
            ),
            audit="principal create",
        ),
        as_json,
    )


@principal_app.command("list")
def principal_list(as_json: JsonOpt = False) -> None:
    """List principals."""
    _print(run_in_session(admin.list_principals), as_json)


@admin_app.command("grant")
def grant_create(
    principal: Annotated[str, typer.Argument(help="Principal name.")],
    collection: Annotated[str, typer.Argument(help="Collection id or alias.")],
    read: Annotated[bool, typer.Option("--read", help="Allow reading.")] = False,
    write: Annotated[bool, typer.Option("--write", help="Allow writing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Grant (or change) a principal's read/write access to a collection."""
    _print(
        run_in_session(
            lambda s: admin.grant(
                s, principal=principal, collection_id=_collection_id(s, collection), read=read, write=write
            ),
            audit="grant",
        ),
        as_json,
    )


@admin_app.command("grant-list")
def grant_list(
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List grants."""
    _print(run_in_session(lambda s: admin.list_grants(s, principal=principal)), as_json)


@admin_app.command("grant-revoke")
def grant_revoke(
    principal: Annotated[str, typer.Argument(help="Principal name.")],
    collection: Annotated[str, typer.Argument(help="Collection id or alias.")],
    as_json: JsonOpt = False,
) -> None:
    """Remove a principal's grant on a collection."""
    _print(
        run_in_session(
            lambda s: admin.revoke_grant(s, principal=principal, collection_id=_collection_id(s, collection)),
            audit="grant-revoke",
        ),
        as_json,
    )


@key_app.command("create")
def key_create(
    principal: Annotated[str, typer.Argument(help="Principal name.")],
    expires_in_days: Annotated[int | None, typer.Option(help="Expire the key after N days.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key and print its id and secret (shown this once only)."""
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    _print(
        run_in_session(lambda s: admin.create_key(s, principal=principal, expires_at=expires), audit="key create"),
        as_json,
    )


@key_app.command("list")
def key_list(
    principal: Annotated[str | None, typer.Option(help="Only this principal.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (never their secrets)."""
    _print(run_in_session(lambda s: admin.list_keys(s, principal=principal)), as_json)


@key_app.command("revoke")
def key_revoke(key_id: Annotated[str, typer.Argument(help="Key id.")], as_json: JsonOpt = False) -> None:
    """Revoke a key; it is refused (401) from the next request on."""
    _print(run_in_session(lambda s: admin.revoke_key(s, key_id=key_id), audit="key revoke"), as_json)


@key_app.command("rotate")
def key_rotate(
    key_id: Annotated[str, typer.Argument(help="Key id to replace.")],
    grace_hours: Annotated[float, typer.Option(help="Hours the old key keeps working.")] = 24.0,
    expires_in_days: Annotated[int | None, typer.Option(help="Expire the new key after N days.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a new key for the same principal now; the old key expires after the grace period."""
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    _print(
        run_in_session(
            lambda s: admin.rotate_key(s, key_id=key_id, grace_hours=grace_hours, expires_at=expires),
            audit="key rotate",
        ),
        as_json,
    )


@principal_app.command("update")
def principal_update(
    name: Annotated[str, typer.Argument(help="Principal name.")],
    clearance: Annotated[str | None, typer.Option(help="TLP clearance: clear|green|amber|amber+strict|red.")] = None,
    organisation: Annotated[str | None, typer.Option(help="Organisation name.")] = None,
    requests_per_minute: Annotated[str | None, typer.Option(help="N (0 = unlimited) or 'default'.")] = None,
    objects_per_day: Annotated[str | None, typer.Option(help="N (0 = unlimited) or 'default'.")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Inactive principals get 401.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a principal's clearance, organisation, limits or activation."""
    rpm, per_day = _limit_option(requests_per_minute), _limit_option(objects_per_day)
    _print(
        run_in_session(
            lambda s: admin.update_principal(
                s,
                name=name,
                clearance=clearance,
                organisation=organisation,
                requests_per_minute=rpm,
                objects_per_day=per_day,
                is_active=active,
            ),
            audit="principal update",
        ),
        as_json,
    )


def _limit_option(text: str | None) -> int | admin.Unset | None:
    if text is None:
        return admin.UNSET
    if text.strip().lower() == "default":
        return None
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise typer.BadParameter(f"{text!r} is not a number of 0 or more, nor 'default'")
    return int(text)


@audit_app.command("list")
def audit_list(
    principal: Annotated[str | None, typer.Option(help="Only this principal (name or id).")] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO time (UTC if no offset) or a duration back: 90s, 5m, 1h, 7d.")
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", "--collection-id", help="Only this collection (id or alias).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most events shown (newest first).")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit trail, newest first: who did what, when, to which collection, with what outcome."""
    start = _since(since) if since else None
    events = run_in_session(
        lambda s: admin.list_audit(
            s,
            principal=principal,
            collection_id=_collection_id(s, collection) if collection else None,
            since=start,
            limit=limit,
        )
    )
    _print(events, as_json, _audit_lines)


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _audit_lines(events: list[dict[str, Any]]) -> str:
    if not events:
        return "(no audit events)"
    lines = []
    for e in events:
        served = f" objects={e['object_count']}" if e.get("object_count") is not None else ""
        who = e.get("principal_name") or "-"
        lines.append(
            f"{e['at']}  {who:<20} {e['method']:<6} {e['status_code']:>3} {e['outcome']:<12} "
            f"{e['path']}{served}" + (f"  [{e['detail']}]" if e.get("detail") else "")
        )
    return "\n".join(lines)


# --- sources and sync ---------------------------------------------------------------------------------


@source_app.command("create")
def source_create(
    name: Annotated[str, typer.Argument(help="Unique source name.")],
    url: Annotated[str, typer.Option(help="Remote TAXII discovery URL (…/taxii2/) or API root URL.")],
    collection_id: Annotated[str, typer.Option(help="Remote collection id.")],
    target: Annotated[str, typer.Option(help="Local collection (id or alias) to pull into (or push from).")],
    api_root: Annotated[str | None, typer.Option(help="Remote API root name or URL (with a discovery URL).")] = None,
    credentials: Annotated[
        str | None,
        typer.Option(
            help="Where the credential is: env:VAR or file:/path. "
            "The value is 'user:password' (Basic) or 'Bearer <token>'; never stored."
        ),
    ] = None,
    interval: Annotated[str, typer.Option(help="Pull interval for `sync --every`-less loops, e.g. 5m, 1h.")] = "5m",
    page_size: Annotated[int, typer.Option(help="Objects per request.")] = 1000,
    direction: Annotated[str, typer.Option(help="pull (default) or push.")] = "pull",
    max_tlp: Annotated[str, typer.Option(help="Push only: the most restrictive TLP sent.")] = "amber",
    as_json: JsonOpt = False,
) -> None:
    """Register a partner TAXII 2.1 collection to pull from (or push to)."""
    from indicator_exchange.sync import service as sync

    seconds = parse_duration(interval)
    _print(
        run_in_session(
            lambda s: sync.create_source(
                s,
                name=name,
                url=url,
                api_root=api_root,
                remote_collection=collection_id,
                local_collection=_collection_id(s, target),
                credentials_ref=credentials,
                interval_seconds=seconds,
                page_size=page_size,
                direction=direction,
                max_tlp=max_tlp,
            )
        ),
        as_json,
    )


@source_app.command("list")
def source_list(as_json: JsonOpt = False) -> None:
    """List sources with their bookmark and last outcome."""
    from indicator_exchange.sync import service as sync

    _print(run_in_session(sync.list_sources), as_json)


@source_app.command("disable")
def source_disable(name: Annotated[str, typer.Argument(help="Source name.")], as_json: JsonOpt = False) -> None:
    """Stop syncing a source (its bookmark is kept)."""
    from indicator_exchange.sync import service as sync

    _print(run_in_session(lambda s: sync.set_enabled(s, name, False)), as_json)


@source_app.command("enable")
def source_enable(name: Annotated[str, typer.Argument(help="Source name.")], as_json: JsonOpt = False) -> None:
    """Resume syncing a source from its bookmark."""
    from indicator_exchange.sync import service as sync

    _print(run_in_session(lambda s: sync.set_enabled(s, name, True)), as_json)


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


@app.command()
def sync(
    source: Annotated[str | None, typer.Option(help="Only this source (default: every enabled source).")] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit (the default).")] = False,
    every: Annotated[str | None, typer.Option(help="Repeat every interval, e.g. 5m, until interrupted.")] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Stay in step live until interrupted: the partner's stream, else a long poll (Prefer: wait), "
            "else adaptive polling (docs/live.md).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull (or push) partner TAXII feeds incrementally; Ctrl-C stops cleanly after the current page."""
    tune_garbage_collector()
    import signal
    import threading

    from indicator_exchange.store import sources as source_store

    if once and every:
        raise typer.BadParameter("--once and --every exclude each other")
    settings = _settings()
    _require_schema(settings)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        typer.echo("stopping after the current page…", err=True)
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    interval = parse_duration(every) if every else None
    failed = False
    if follow and (once or every):
        raise typer.BadParameter("--follow excludes --once and --every")
    try:
        if follow:
            _follow(sessions, source, stop, as_json)
            return
        while True:
            with session_scope(sessions) as session:
                names = [source] if source else [s.name for s in source_store.list_sources(session, enabled_only=True)]
                if not names:
                    typer.echo(_no_sources(len(source_store.list_sources(session))), err=True)
            for name in names:
                if stop.is_set():
                    break
                result = _run_sync(sessions, name, stop)
                failed = failed or result.outcome in ("error", "loop-detected")
                typer.echo(json.dumps(dataclasses.asdict(result)) if as_json else result.summary())
            if interval is None or stop.is_set():
                break
            stop.wait(interval)
            if stop.is_set():
                break
    except ExchangeError as exc:
        _fail(exc.message)
    finally:
        engine.dispose()
    if failed:
        raise typer.Exit(1)


def _follow(sessions: Any, source: str | None, stop: Any, as_json: bool) -> None:
    """``sync --follow``: a progress line on a terminal, one log line per batch otherwise."""
    from indicator_exchange.store import sources as source_store
    from indicator_exchange.sync import follow as live_follow

    with session_scope(sessions) as session:
        pulls = [s.name for s in source_store.list_sources(session, enabled_only=True) if s.direction == "pull"]
        names = [source] if source else pulls
        if not names:
            _fail(_no_sources(len(source_store.list_sources(session))))
    terminal = sys.stderr.isatty() and not as_json

    def report(event: Any) -> None:
        if as_json:
            typer.echo(json.dumps(dataclasses.asdict(event)))
            return
        totals = event.totals
        text = (
            f"{event.source} [{event.mode}]: {event.note}"
            if event.note
            else f"{event.source} [{event.mode}]: {event.received} received, {event.stored} stored, "
            f"{event.duplicates} already present, {event.rejected} rejected; bookmark {event.bookmark or '-'}; "
            f"total {totals.get('stored', 0)} stored in {plural(totals.get('batches', 0), 'batch')}"
        )
        if terminal:
            sys.stderr.write("\r\x1b[2K" + text[:200])
            sys.stderr.flush()
        else:
            typer.echo(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {text}", err=True)

    live_follow.follow(sessions, names, stop=stop, report=report)
    if terminal:
        sys.stderr.write("\n")


def _no_sources(configured: int) -> str:
    """What `sync` says when it has nothing to pull: silence looked like success."""
    if configured:
        return (
            f"no enabled feed sources ({plural(configured, 'source')} disabled); "
            "enable one with `indicator-exchange admin source enable NAME`"
        )
    return "no feed sources configured; add one with `indicator-exchange admin source create`"


def _run_sync(sessions: Any, name: str, stop: Any) -> Any:
    """One source, with a live progress line on a terminal."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from indicator_exchange.store import sources as source_store
    from indicator_exchange.sync import service as sync_service

    with session_scope(sessions) as session:
        found = source_store.get_source(session, name)
        direction = found.direction if found else "pull"
    run = sync_service.push if direction == "push" else sync_service.pull
    if not sys.stderr.isatty():
        return run(sessions, name, stop=stop)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as progress:
        task = progress.add_task(f"{name}: starting", total=None)

        def on_page(result: Any) -> None:
            progress.update(
                task,
                description=f"{name}: {plural(result.pages, 'page')}, {result.received} received, "
                f"{result.stored} stored, {result.rejected} rejected",
            )

        return run(sessions, name, stop=stop, on_page=on_page)


# --- compliance: reports and exports (indicator_exchange/reports/cli.py) ----------------------------------


def _register_reports() -> None:
    from indicator_exchange.reports.cli import export_command, report_command

    app.command("report")(report_command)
    app.command("export")(export_command)


_register_reports()


# --- detections ----------------------------------------------------------------------------------------


@app.command()
def push(
    file: Annotated[str, typer.Argument(help="NDJSON detections, one per line; '-' reads standard input.")],
    collection: Annotated[
        str | None, typer.Option(help="Target collection id (default: the detector's only one).")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Push to this server (base URL) instead of the local database.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="With --url: the API key as '<key id>.<secret>' (or set IX_PUSH_KEY).", envvar="IX_PUSH_KEY"),
    ] = None,
    as_principal: Annotated[
        str | None, typer.Option("--as", help="Local mode: the detector principal to push as.")
    ] = None,
    batch: Annotated[int, typer.Option(help="Detections per request / transaction.", min=1, max=10_000)] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Push detector output (NDJSON) through ingestion, locally or to a server, with progress and a summary.

    Each rejected line is listed (line number, field, reason; all of them in --json) and the exit code is 1.
    A line published otherwise than it asked (a TLP raised by a rule, a stored indicator's TLP or proxy kind
    kept) is listed with the reason (`adjusted`; under `adjustments` in --json); that alone is no failure.
    """
    tune_garbage_collector()
    from indicator_exchange.ingest.push import push_file, summary_lines

    settings = _settings()
    if url is None:
        _require_schema(settings)
    try:
        summary = push_file(
            file,
            settings=settings,
            collection=collection,
            url=url,
            key=key,
            principal=as_principal,
            batch=batch,
            progress=sys.stderr.isatty(),
        )
    except ExchangeError as exc:
        _fail(exc.message)
        return
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        notes, totals = summary_lines(summary)
        for note in notes:
            typer.echo(note, err=True)
        typer.echo(totals)
    if summary["rejected"]:
        raise typer.Exit(1)


@app.command()
def fingerprint(
    file: Annotated[str, typer.Argument(help="A file holding one prompt; '-' reads standard input.")] = "-",
    as_json: JsonOpt = False,
) -> None:
    """Compute a prompt's x-llm-prompt signature (SHA-256, keyed LSH bands) with IX_COMMUNITY_KEY."""
    from indicator_exchange.stix.convert import prompt_observable
    from indicator_exchange.stix.fingerprint import fingerprint_prompt

    text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()  # noqa: SIM115
    settings = _settings()
    result = fingerprint_prompt(text, key=settings.community_key_bytes, key_id=settings.community_key_id)
    observable = prompt_observable(result)
    if as_json:
        typer.echo(json.dumps(observable, indent=2))
    else:
        typer.echo(
            f"sha256: {result.sha256}\nnormalized_length: {result.normalized_length}\n"
            f"key_id: {result.key_id}\nlsh_bands: {' '.join(result.lsh_bands)}"
        )


# --- behavioural detection (indicator_exchange/detect/cli.py) ----------------------------------------------


def _register_detect() -> None:
    from indicator_exchange.detect.cli import detect_command

    app.command("detect")(detect_command)


_register_detect()


# --- matching --------------------------------------------------------------------------------------------


@app.command()
def match(
    events: Annotated[
        str, typer.Argument(help="NDJSON traffic events (schemas/match-event.schema.json); '-' = stdin.")
    ],
    collection: Annotated[
        list[str] | None, typer.Option(help="Collection id to match against (repeatable; default: every collection).")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    sightings: Annotated[bool, typer.Option("--sightings", help="Store sightings of matched indicators.")] = False,
    candidates: Annotated[bool, typer.Option("--candidates", help="Also report single-band LSH candidates.")] = False,
    clearance: Annotated[str, typer.Option(help="Most restrictive TLP of the indicators used.")] = "red",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON result (matches, rejections, counts) instead of rows.")
    ] = False,
) -> None:
    """Match API-traffic events against the active indicators in the local database.

    A malformed event is listed (line number, field, reason; all of them in --json), the other events are
    matched, and the exit code is 1.
    """
    tune_garbage_collector()
    import csv
    from datetime import UTC, datetime

    from indicator_exchange.auth.service import Access, Caller
    from indicator_exchange.ingest.parsing import parse_ndjson_line
    from indicator_exchange.stix.markings import Tlp
    from indicator_exchange.store import catalog
    from indicator_exchange.sync import matching
    from indicator_exchange.sync.events import read_events

    if output_format not in ("jsonl", "csv"):
        raise typer.BadParameter("--format is jsonl or csv")
    if as_json and output_format != "jsonl":
        raise typer.BadParameter("--json prints one JSON result; it excludes --format csv")
    settings = _settings()
    _require_schema(settings)
    stream = sys.stdin.buffer if events == "-" else open(events, "rb")  # noqa: SIM115
    try:
        read = [parse_ndjson_line(raw, number) for number, raw in enumerate(stream, start=1)]
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    batch = read_events([line for line in read if line is not None])
    parsed = batch.events
    rejections = [r.model_dump(mode="json") for r in batch.rejections]
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            grants = {c.id: Access(True, sightings) for c in catalog.list_collections(session)}
            operator = Caller(
                principal_id=uuid.uuid4(),
                name="cli",
                kind="admin",
                clearance=int(Tlp.parse(clearance)),
                key_id="cli",
                identity_ref=settings.identity_id,
                grants=grants,
            )
            now = datetime.now(UTC)
            ids = matching.readable_collections(session, operator, collection or [])
            indicator_set = matching.load_indicator_set(
                session,
                [c for c in catalog.list_collections(session) if c.id in ids],
                clearance=operator.clearance,
                settings=settings,
                now=now,
                min_lsh_bands=1 if candidates else 2,
            )
            found = matching.match_events(indicator_set, parsed)
            if as_json:  # one document, written below once the sightings are known
                pass
            elif output_format == "csv":
                writer = csv.writer(sys.stdout)
                writer.writerow(
                    [
                        "event_index",
                        "event_id",
                        "timestamp",
                        "indicator_id",
                        "kind",
                        "campaign_ids",
                        "matched",
                        "verified",
                    ]
                )
                for m in found:
                    writer.writerow(
                        [
                            m.event_index,
                            m.event_id or "",
                            m.model_dump(mode="json")["timestamp"],  # "…Z", exactly as in JSONL
                            m.indicator_id,
                            m.kind,
                            " ".join(m.campaign_ids),
                            m.matched,
                            m.verified,
                        ]
                    )
            else:
                for m in found:
                    typer.echo(m.model_dump_json())
            compiled = indicator_set.compiled
            summary = f"{plural(len(parsed), 'event')}, "
            if rejections:
                summary += f"{len(rejections):,} rejected, "
            summary += f"{plural(len(found), 'match')} against {plural(compiled.indicator_count, 'indicator')}"
            posted: dict[str, int] | None = None
            if indicator_set.compiled.skipped:
                summary += (
                    f" ({plural(len(indicator_set.compiled.skipped), 'indicator')} skipped: unsupported patterns)"
                )
            if sightings:
                posted = matching.record_sightings(
                    session,
                    indicator_set,
                    [m for m in found if m.verified],
                    settings=settings,
                    caller=operator,
                    now=now,
                )
                summary += f"; {plural(posted['sightings'], 'sighting')} stored"
            if as_json:
                result: dict[str, Any] = {
                    "events": len(parsed),
                    "rejected": len(rejections),
                    "rejections": rejections,
                    "matches": [m.model_dump(mode="json") for m in found],
                    "indicators": compiled.indicator_count,
                }
                if posted is not None:
                    result["sightings"] = posted
                typer.echo(json.dumps(result))
            else:
                for item in rejections[:SHOWN_REJECTIONS]:
                    typer.echo(f"line {item['line']}: rejected ({item['field']}): {item['reason']}", err=True)
                if len(rejections) > SHOWN_REJECTIONS:
                    more = len(rejections) - SHOWN_REJECTIONS
                    typer.echo(f"… and {more:,} more rejected events (--json lists all)", err=True)
            typer.echo(summary, err=True)
    except ExchangeError as exc:
        _fail(exc.message)
    finally:
        engine.dispose()
    if rejections:
        raise typer.Exit(1)


# --- demo --------------------------------------------------------------------------------------------


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve after loading.")] = True,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (`make demo PORT=8001`).", min=1, max=65535)] = 8000,
) -> None:
    """Create the database, load a demo (API root, collections, indicators), print keys and examples, serve.

    The printed examples run as printed, from any directory. A busy port fails before anything is loaded.
    Re-running it revokes the demo keys it printed before.
    """
    from indicator_exchange.demo import load_demo

    if serve_after:
        _require_free_port(host, port)
    settings = _settings()
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            info = load_demo(session, settings)
    finally:
        engine.dispose()
    info.database = migrate.describe_database(settings)
    path = migrate.sqlite_file(settings.database_url)
    info.database_env = f"IX_DATABASE_URL={shlex.quote(f'sqlite:///{path}')} " if path is not None else ""
    base = f"http://{host}:{port}"
    typer.echo(info.describe(base))
    if serve_after:
        serve(host=host, port=port, workers=1, tls_cert=None, tls_key=None, log_level="info")


def _require_free_port(host: str, port: int) -> None:
    """Fail before loading anything or printing keys when the port is taken (uvicorn would fail after)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        _fail(f"cannot bind {host}: {exc}")
        return
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no clash
        try:
            probe.bind(address)
        except OSError as exc:
            _fail(
                f"port {port} on {host} is not free ({exc.strerror}); stop what listens there or pick another "
                f"port: `make demo PORT={port + 1}` (or `indicator-exchange demo --port {port + 1}`)"
            )


def main() -> None:
    # Keep third-party logging quiet by default; the server configures its own logging.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
