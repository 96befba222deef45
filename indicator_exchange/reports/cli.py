"""``indicator-exchange report`` and ``indicator-exchange export`` (registered on the main Typer app)."""

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from indicator_exchange.errors import ExchangeError
from indicator_exchange.stix.markings import Tlp

if TYPE_CHECKING:
    # Imported when the command runs: every command module is imported for any command and for --help.
    from sqlalchemy.orm import Session

    from indicator_exchange.reports import export

# An export leaves the system: without an explicit --clearance or --as, only what may go to the whole
# community (TLP:GREEN and below) is written. AMBER and above need a deliberate choice.
DEFAULT_EXPORT_CLEARANCE = "green"


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _read_session() -> Iterator["Session"]:
    """One read-only transaction on the configured store, which must be at the code's schema revision."""
    from indicator_exchange.settings import get_settings
    from indicator_exchange.store import migrate
    from indicator_exchange.store.engine import make_engine, make_sessionmaker, read_only_engine, session_scope

    settings = get_settings()
    problem = migrate.schema_problem(settings)
    if problem is not None:
        _fail(problem, code=2)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(read_only_engine(engine))) as session:
            yield session
    except ExchangeError as exc:
        _fail(exc.message)
    finally:
        engine.dispose()


@contextmanager
def _output(path: Path | None, binary_to_terminal: bool) -> Iterator[IO[bytes]]:
    if path is None:
        if binary_to_terminal and sys.stdout.isatty():
            _fail("this format is binary: write it to a file with --output FILE")
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and keep Python from failing again at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        return
    with path.open("wb") as handle:
        yield handle


def _tlp(text: str) -> Tlp:
    try:
        return Tlp.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def report_command(
    start: Annotated[str, typer.Option("--from", help="Window start: YYYY-MM-DD or ISO 8601 time (UTC).")],
    end: Annotated[str, typer.Option("--to", help="Window end, exclusive; a date means the whole day.")],
    fmt: Annotated[str, typer.Option("--format", help="html | pdf | csv | json.")] = "json",
    collection: Annotated[list[str] | None, typer.Option(help="Collection id or alias (repeatable).")] = None,
    partner: Annotated[str | None, typer.Option(help="Only this partner (principal or feed source).")] = None,
    clearance: Annotated[str, typer.Option(help="Leave out objects above this TLP level.")] = "red",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """Compliance report of a window: published, shared, received, exceptions (HTML, PDF, CSV or JSON)."""
    from indicator_exchange.reports import render
    from indicator_exchange.reports.context import ReportRequest, parse_when
    from indicator_exchange.reports.service import build_report
    from indicator_exchange.settings import get_settings

    if fmt not in render.FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(render.FORMATS)}")
    settings = get_settings()
    with _read_session() as session:
        request = ReportRequest(
            start=parse_when(start),
            end=parse_when(end, end=True),
            collections=collection or [],
            partner=partner,
            clearance=_tlp(clearance),
        )
        report = build_report(session, request, identity=settings.identity_id, organisation=settings.organisation_name)
    body = render.render(report, fmt)
    with _output(output, binary_to_terminal=fmt == "pdf") as handle:
        handle.write(body)
    target = str(output) if output else "stdout"
    typer.echo(
        f"report {report.window.start:%Y-%m-%d %H:%M} to {report.window.end:%Y-%m-%d %H:%M} UTC, "
        f"marked {report.marking}, written to {target} ({fmt}, {len(body):,} bytes)",
        err=True,
    )


def export_command(
    collection: Annotated[str, typer.Option(help="Collection id or alias.")],
    fmt: Annotated[str, typer.Option("--format", help="stix (a STIX 2.1 bundle) | jsonl | csv.")] = "stix",
    since: Annotated[str | None, typer.Option(help="Only objects added after this time (YYYY-MM-DD or ISO).")] = None,
    type: Annotated[list[str] | None, typer.Option("--type", help="STIX type (repeatable or comma-separated).")] = None,
    clearance: Annotated[str | None, typer.Option(help="Most restrictive TLP to include (default: green).")] = None,
    as_principal: Annotated[
        str | None, typer.Option("--as", help="Export with this principal's grant and clearance.")
    ] = None,
    all_versions: Annotated[bool, typer.Option("--all-versions", help="Every version, not only the latest.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
    page_size: Annotated[int, typer.Option(help="Objects read per page.", min=1, max=10_000)] = 1000,
) -> None:
    """Stream a collection slice as a STIX 2.1 bundle, JSON lines or CSV, in bounded memory."""
    from indicator_exchange.reports import export

    if fmt not in export.FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(export.FORMATS)}")
    if clearance is not None and as_principal is not None:
        raise typer.BadParameter("--clearance and --as exclude each other")
    started = time.monotonic()
    stats = export.ExportStats()
    with _read_session() as session:
        found = export.resolve_collection(session, collection)
        if as_principal is not None:
            level = export.clearance_of_principal(session, as_principal, found)
        else:
            level = int(_tlp(clearance or DEFAULT_EXPORT_CLEARANCE))
        plan = export.ExportRequest(
            collection=found,
            clearance=level,
            since_us=export.parse_since(since),
            types=export.parse_types(type),
            all_versions=all_versions,
            page_size=page_size,
        )
        total, withheld = export.counts(session, plan)
        with _output(output, binary_to_terminal=False) as handle:
            _write_export(session, plan, fmt, stats, handle, total, show_progress=sys.stderr.isatty())
    seconds = time.monotonic() - started
    typer.echo(
        f"exported {stats.objects:,} objects from collection {found.id} as {fmt} to {output or 'stdout'} "
        f"({stats.bytes:,} bytes, {seconds:.1f} s); clearance TLP:{Tlp(level).label.upper()}, "
        f"{withheld:,} above it withheld",
        err=True,
    )


def _write_export(
    session: "Session",
    plan: "export.ExportRequest",
    fmt: str,
    stats: "export.ExportStats",
    handle: IO[bytes],
    total: int,
    *,
    show_progress: bool,
) -> None:
    """Write as pages arrive; on a terminal, a progress bar on stderr (the export itself may go to stdout)."""
    from indicator_exchange.reports import export

    if not show_progress:
        for chunk in export.stream(session, plan, fmt, stats):
            handle.write(chunk)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("export", total=total)

        def advance(done: "export.ExportStats") -> None:
            progress.update(task, completed=done.objects)

        for chunk in export.stream(session, plan, fmt, stats, on_page=advance):
            handle.write(chunk)
