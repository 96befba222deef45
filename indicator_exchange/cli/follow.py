"""``sync --follow``'s output: a progress line on a terminal, one log line per batch otherwise."""

import dataclasses
import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import typer
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.cli.common import fail
from indicator_exchange.store import sources as source_store
from indicator_exchange.store.engine import session_scope
from indicator_exchange.sync import follow as live_follow
from indicator_exchange.wording import plural


def run_follow(sessions: sessionmaker[Session], source: str | None, stop: threading.Event, as_json: bool) -> None:
    with session_scope(sessions) as session:
        configured = source_store.list_sources(session)
        names = [source] if source else [s.name for s in configured if s.enabled and s.direction == "pull"]
    if not names:
        fail(
            "no enabled pull sources to follow; add one with `indicator-exchange admin source create`"
            if not configured
            else "no enabled pull sources to follow; enable one with `indicator-exchange admin source enable NAME`"
        )
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
