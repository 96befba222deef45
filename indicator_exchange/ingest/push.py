"""``indicator-exchange push``: stream an NDJSON file of detections into ingestion, locally or over HTTP."""

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import httpx

from indicator_exchange.auth.service import Access, Caller
from indicator_exchange.errors import BadRequest, NotFound
from indicator_exchange.ingest.parsing import InputLine, parse_ndjson_line
from indicator_exchange.ingest.service import ingest, target_collection
from indicator_exchange.settings import Settings
from indicator_exchange.store import catalog, principals
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope
from indicator_exchange.store.statistics import analyze_stale
from indicator_exchange.wording import plural

COUNTS = ("created", "versioned", "unchanged", "revoked", "rejected")
# One detection as read from the file: its exact bytes (sent as they are over HTTP) and its parsed form.
Read = tuple[bytes, InputLine]
# A batch sent; answers the counts and the per-line results, numbered like the file.
Sender = Callable[[list[Read]], tuple[dict[str, int], list[dict[str, object]]]]


def _batches(stream: IO[bytes], size: int) -> Iterator[list[Read]]:
    batch: list[Read] = []
    for number, raw in enumerate(stream, start=1):
        parsed = parse_ndjson_line(raw, number)
        if parsed is None:
            continue
        batch.append((raw.strip(), parsed))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def rejection(result: dict[str, object]) -> dict[str, object]:
    """A rejected line as the CLI reports it: its line in the file, the field at fault and why."""
    error = result.get("error")
    detail = error if isinstance(error, dict) else {}
    return {"line": result["line"], "field": detail.get("field"), "reason": detail.get("message")}


def _local_caller(settings: Settings, principal: str | None) -> Caller:
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            if principal is None:
                detectors = [p for p in principals.list_principals(session) if p.kind == "detector"]
                if len(detectors) != 1:
                    raise BadRequest("name the detector principal to push as (--as NAME)")
                found = detectors[0]
            else:
                maybe = principals.get_principal(session, principal)
                if maybe is None:
                    raise NotFound(f"there is no principal {principal!r}")
                found = maybe
            grants = {cid: Access(g.can_read, g.can_write) for cid, g in catalog.grants_for(session, found.id).items()}
            return Caller(
                principal_id=found.id,
                name=found.name,
                kind=found.kind,
                clearance=found.clearance,
                key_id="cli",
                identity_ref=found.identity_ref,
                grants=grants,
            )
    finally:
        engine.dispose()


# Rejected (or adjusted) lines the CLI prints of a push; `--json` carries every one.
SHOWN_LINES = 100


def summary_lines(summary: dict[str, Any], *, item: str = "line") -> tuple[list[str], str]:
    """What a command prints of ``push_file``'s answer: the notes on the first ``SHOWN_LINES`` rejected and
    adjusted lines (``item`` names what a line number counts), and the one-line totals."""
    notes = [f"{item} {r['line']}: rejected ({r['field']}): {r['reason']}" for r in summary["rejections"][:SHOWN_LINES]]
    if len(summary["rejections"]) > SHOWN_LINES:
        notes.append(f"… and {len(summary['rejections']) - SHOWN_LINES:,} more rejected lines (--json lists all)")
    for adjusted in summary["adjustments"][:SHOWN_LINES]:
        notes.extend(f"{item} {adjusted['line']}: adjusted: {message}" for message in adjusted["adjusted"])
    if len(summary["adjustments"]) > SHOWN_LINES:
        notes.append(f"… and {len(summary['adjustments']) - SHOWN_LINES:,} more adjusted lines (--json lists all)")
    totals = (
        f"pushed {plural(summary['lines'], 'detection')}: {summary['created']:,} created, "
        f"{summary['versioned']:,} versioned, {summary['unchanged']:,} unchanged, "
        f"{summary['revoked']:,} revoked, {summary['rejected']:,} rejected"
    )
    return notes, totals


def push_file(
    path: str,
    *,
    settings: Settings,
    collection: str | None,
    url: str | None,
    key: str | None,
    principal: str | None,
    batch: int,
    progress: bool,
) -> dict[str, Any]:
    """Push every line of ``path`` ('-' = stdin); returns the summed outcome counts plus ``lines``,
    ``rejections`` (line, field, reason of every rejected line) and ``adjustments`` (line and messages of every
    line published otherwise than it asked), numbered like the file."""
    totals: dict[str, Any] = dict.fromkeys(COUNTS, 0) | {"lines": 0}
    rejections: list[dict[str, object]] = []
    adjustments: list[dict[str, object]] = []
    size = None if path == "-" else Path(path).stat().st_size
    stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("pushing"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[summary]}"),
        disable=not progress,
        transient=True,
    )
    try:
        with bar, ExitStack() as closing:
            task = bar.add_task("push", total=size, summary="")
            if url:
                if not key:
                    raise BadRequest("--url needs --key '<key id>.<secret>' (or IX_PUSH_KEY)")
                send = _remote_sender(url, key, collection, closing)
            else:
                send = _local_sender(settings, collection, _local_caller(settings, principal), closing)
            for lines in _batches(stream, batch):
                summary, results = send(lines)
                for name in COUNTS:
                    totals[name] += summary.get(name, 0)
                totals["lines"] += len(lines)
                rejections += [rejection(r) for r in results if r.get("outcome") == "rejected"]
                adjustments += [{"line": r["line"], "adjusted": r["adjusted"]} for r in results if r.get("adjusted")]
                bar.update(
                    task,
                    completed=stream.tell() if size else None,
                    summary=f"{totals['lines']} sent, {totals['rejected']} rejected",
                )
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return totals | {"rejections": rejections, "adjustments": adjustments}


def _local_sender(settings: Settings, collection: str | None, caller: Caller, closing: ExitStack) -> Sender:
    engine = make_engine(settings.database_url)
    closing.callback(engine.dispose)
    sessions = make_sessionmaker(engine)

    def send(batch: list[Read]) -> tuple[dict[str, int], list[dict[str, object]]]:
        with session_scope(sessions) as session:
            target = target_collection(session, caller, collection)
            lines = [line for _, line in batch]
            result = ingest(session, caller=caller, collection=target, lines=lines, settings=settings)
        analyze_stale(engine)  # a long local load must not leave the planner blind (store.statistics)
        return result.counts(), [r.as_dict() for r in result.results]

    return send


def _remote_sender(url: str, key: str, collection: str | None, closing: ExitStack) -> Sender:
    client = closing.enter_context(
        httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=300)
    )
    params = {"collection": collection} if collection else {}

    def send(batch: list[Read]) -> tuple[dict[str, int], list[dict[str, object]]]:
        # Each line goes as read, unparseable ones too, so the server records the real parse error. Blank
        # lines were dropped, so the server's line N is the batch's N-th line: its results get the file's numbers.
        body = b"\n".join(raw for raw, _ in batch)
        response = client.post(
            "/api/v1/detections", content=body, params=params, headers={"Content-Type": "application/x-ndjson"}
        )
        if response.status_code != 200:
            raise BadRequest(f"the server answered {response.status_code}: {response.text[:500]}")
        answer = response.json()
        results: list[dict[str, object]] = answer.get("results", [])
        for result in results:
            number = result.get("line")
            if isinstance(number, int) and 1 <= number <= len(batch):
                result["line"] = batch[number - 1][1].line
        summary: dict[str, int] = answer["summary"]
        return summary, results

    return send
