"""``indicator-exchange detect``: registered on the main Typer app by ``indicator_exchange.cli``."""

import json
import os
import sys
import tempfile
from typing import IO, TYPE_CHECKING, Annotated

import typer

from indicator_exchange.errors import ExchangeError
from indicator_exchange.wording import plural

if TYPE_CHECKING:
    # Imported when the command runs: every command module is imported for any command and for --help.
    from indicator_exchange.detect.reader import LineError

SHOWN_ERRORS = 100
"""Bad lines printed on standard error; ``--errors FILE`` gets every one."""


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _seconds(text: str, name: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        value = int(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise typer.BadParameter(f"{name} is a duration such as 3600, 90m, 24h or 2d")
    return value


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    index, _, total = text.partition("/")
    if not (index.isdigit() and total.isdigit()) or not 0 <= int(index) < int(total):
        raise typer.BadParameter("--shard is I/N with 0 <= I < N, e.g. 0/4")
    return int(index), int(total)


def detect_command(
    events: Annotated[
        str, typer.Argument(help="JSONL traffic events (schemas/match-event.schema.json); '-' reads standard input.")
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write the detections as NDJSON ('-' = standard output).")
    ] = "-",
    clusters: Annotated[
        str | None, typer.Option(help="Also write the clusters as JSON (schemas/detect-clusters.schema.json).")
    ] = None,
    errors: Annotated[
        str | None, typer.Option(help="Write every rejected input line (line, reason) to this JSONL file.")
    ] = None,
    window: Annotated[
        str,
        typer.Option(
            help="Analysis window (default 24h): state is held for one window at a time (IX_DETECT_WINDOW_SECONDS)."
        ),
    ] = "",
    bucket: Annotated[
        str, typer.Option(help="Time bucket of the synchronisation signal (default 1h, IX_DETECT_BUCKET_SECONDS).")
    ] = "",
    shard: Annotated[
        str | None,
        typer.Option(help="Only the events whose /24 (/48) hashes to partition I of N ('I/N'), to run N in parallel."),
    ] = None,
    push: Annotated[bool, typer.Option("--push", help="Push the detections into the local database.")] = False,
    collection: Annotated[
        str | None, typer.Option(help="With --push or --url: target collection id (default: the detector's only one).")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Push the detections to this server (base URL).")] = None,
    key: Annotated[
        str | None,
        typer.Option(help="With --url: the API key as '<key id>.<secret>' (or set IX_PUSH_KEY).", envvar="IX_PUSH_KEY"),
    ] = None,
    as_principal: Annotated[
        str | None, typer.Option("--as", help="With --push: the detector principal to push as.")
    ] = None,
    batch: Annotated[int, typer.Option(help="Detections per push request / transaction.", min=1, max=10_000)] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's summary as JSON on standard error.")] = False,
) -> None:
    """Find hydra clusters in API traffic and write them as detections (proxy_ip, prompt_signature,
    account_pattern) that POST /api/v1/detections accepts.

    One streaming pass; a cluster is reported only when independent signals agree (a shared prompt family and
    synchronised infrastructure or a registration wave). Raw prompts are fingerprinted in memory and never
    written. Every bad input line is reported with its number and reason. Thresholds: IX_DETECT_* (README).
    """
    from pydantic import ValidationError

    from indicator_exchange.detect.config import DetectConfig
    from indicator_exchange.detect.pipeline import run
    from indicator_exchange.settings import get_settings
    from indicator_exchange.store import migrate

    overrides: dict[str, int] = {}
    if window:
        overrides["window_seconds"] = _seconds(window, "--window")
    if bucket:
        overrides["bucket_seconds"] = _seconds(bucket, "--bucket")
    try:
        config = DetectConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)))
        return
    parts = _shard(shard)
    settings = get_settings()
    if push and url:
        raise typer.BadParameter("give --push (local database) or --url (a server), not both")
    if push:
        problem = migrate.schema_problem(settings)
        if problem is not None:
            _fail(problem, code=2)
    shown = 0
    error_file: IO[str] | None = open(errors, "w", encoding="utf-8") if errors else None  # noqa: SIM115

    def on_error(error: "LineError") -> None:
        nonlocal shown
        if error_file is not None:
            error_file.write(json.dumps({"line": error.line, "reason": error.reason}) + "\n")
        if shown < SHOWN_ERRORS:
            typer.echo(f"line {error.line}: {error.reason}", err=True)
        shown += 1

    try:
        stream: IO[bytes] = sys.stdin.buffer if events == "-" else open(events, "rb")  # noqa: SIM115
    except OSError as exc:
        _fail(f"cannot read {events}: {exc.strerror}")
        return
    try:
        outcome = run(stream, config=config, settings=settings, shard=parts, on_error=on_error)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
        if error_file is not None:
            error_file.close()
    lines = [d.model_dump_json(exclude_none=True) for d in outcome.detections]
    pushing = push or url is not None
    target = output
    if output == "-" and pushing:
        handle, target = tempfile.mkstemp(prefix="ix-detect-", suffix=".ndjson")
        os.close(handle)
    if target == "-":
        for line in lines:
            typer.echo(line)
    else:
        with open(target, "w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
    if clusters:
        with open(clusters, "w", encoding="utf-8") as out:
            out.write(outcome.clusters_file.model_dump_json(indent=2) + "\n")
    summary = outcome.clusters_file.summary
    if shown > SHOWN_ERRORS:
        typer.echo(f"… and {shown - SHOWN_ERRORS:,} more rejected lines (--errors FILE lists all)", err=True)
    if as_json:
        typer.echo(summary.model_dump_json(), err=True)
    else:
        typer.echo(
            f"{plural(summary.events, 'event')} read ({summary.lines_rejected:,} lines rejected), "
            f"{plural(summary.clusters, 'cluster')} of {plural(summary.accounts_flagged, 'account')}, "
            f"{plural(summary.detections, 'detection')}",
            err=True,
        )
    if pushing:
        _push(
            target,
            output == "-",
            settings=settings,
            collection=collection,
            url=url,
            key=key,
            principal=as_principal,
            batch=batch,
        )


def _push(
    path: str,
    temporary: bool,
    *,
    settings: object,
    collection: str | None,
    url: str | None,
    key: str | None,
    principal: str | None,
    batch: int,
) -> None:
    """The same path, progress bar and summary as ``indicator-exchange push``."""
    from indicator_exchange.ingest.push import push_file, summary_lines
    from indicator_exchange.settings import Settings

    assert isinstance(settings, Settings)
    try:
        totals = push_file(
            path,
            settings=settings,
            collection=collection,
            url=url,
            key=key,
            principal=principal,
            batch=batch,
            progress=sys.stderr.isatty(),
        )
    except ExchangeError as exc:
        _fail(exc.message)
        return
    finally:
        if temporary:
            os.unlink(path)
    notes, summary = summary_lines(totals, item="detection")
    for note in [*notes, summary]:  # stdout may be the detections themselves (-o -)
        typer.echo(note, err=True)
    if totals["rejected"]:
        raise typer.Exit(1)
