"""The ``sync`` command and the ``admin source`` group: partner TAXII feeds pulled (or pushed) incrementally."""

import dataclasses
import json
import sys
from typing import Annotated, Any

import typer

from indicator_exchange.cli.common import (
    JsonOpt,
    fail,
    load_settings,
    parse_duration,
    print_result,
    require_schema,
    resolve_collection_id,
    run_in_session,
)
from indicator_exchange.errors import ExchangeError
from indicator_exchange.wording import plural

source_app = typer.Typer(help="Partner TAXII feeds to pull from (or push to).", no_args_is_help=True)


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
    print_result(
        run_in_session(
            lambda s: sync.create_source(
                s,
                name=name,
                url=url,
                api_root=api_root,
                remote_collection=collection_id,
                local_collection=resolve_collection_id(s, target),
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

    print_result(run_in_session(sync.list_sources), as_json)


@source_app.command("disable")
def source_disable(name: Annotated[str, typer.Argument(help="Source name.")], as_json: JsonOpt = False) -> None:
    """Stop syncing a source (its bookmark is kept)."""
    from indicator_exchange.sync import service as sync

    print_result(run_in_session(lambda s: sync.set_enabled(s, name, False)), as_json)


@source_app.command("enable")
def source_enable(name: Annotated[str, typer.Argument(help="Source name.")], as_json: JsonOpt = False) -> None:
    """Resume syncing a source from its bookmark."""
    from indicator_exchange.sync import service as sync

    print_result(run_in_session(lambda s: sync.set_enabled(s, name, True)), as_json)


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
    from indicator_exchange.runtime import tune_garbage_collector

    tune_garbage_collector()
    import signal
    import threading

    from indicator_exchange.store import sources as source_store
    from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope

    if once and every:
        raise typer.BadParameter("--once and --every exclude each other")
    settings = load_settings()
    require_schema(settings)
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
            from indicator_exchange.cli.follow import run_follow

            run_follow(sessions, source, stop, as_json)
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
        fail(exc.message)
    finally:
        engine.dispose()
    if failed:
        raise typer.Exit(1)


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
    from indicator_exchange.store.engine import session_scope
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
