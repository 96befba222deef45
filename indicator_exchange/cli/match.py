"""The ``match`` command: API-traffic events against the active indicators in the local database."""

import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from indicator_exchange.cli.common import (
    SHOWN_REJECTIONS,
    fail,
    load_settings,
    require_schema,
)
from indicator_exchange.errors import ExchangeError
from indicator_exchange.wording import plural


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
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="List the active indicators not enforced and why: score below threshold, or on a warninglist "
            "(docs/lifecycle.md).",
        ),
    ] = False,
) -> None:
    """Match API-traffic events against the active indicators in the local database.

    A malformed event is listed (line number, field, reason; all of them in --json), the other events are
    matched, and the exit code is 1.
    """
    from indicator_exchange.runtime import tune_garbage_collector

    tune_garbage_collector()
    import csv

    from indicator_exchange.auth.service import Access, Caller
    from indicator_exchange.ingest.parsing import parse_ndjson_line
    from indicator_exchange.match import service as matching
    from indicator_exchange.match.events import read_events
    from indicator_exchange.stix.markings import Tlp
    from indicator_exchange.store import catalog
    from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope

    if output_format not in ("jsonl", "csv"):
        raise typer.BadParameter("--format is jsonl or csv")
    if as_json and output_format != "jsonl":
        raise typer.BadParameter("--json prints one JSON result; it excludes --format csv")
    settings = load_settings()
    require_schema(settings)
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
            found = matching.match_events(indicator_set, parsed, settings=settings, now=now)
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
                        "score",
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
                            "" if m.score is None else m.score,
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
            if indicator_set.skipped:
                summary += f"; {plural(len(indicator_set.skipped), 'indicator')} not enforced (lifecycle)"
            if explain and not as_json:
                for indicator_id, why in sorted(indicator_set.skipped.items()):
                    typer.echo(f"not enforced: {indicator_id}: {why}", err=True)
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
                if explain:
                    result["not_enforced"] = [
                        {"indicator_id": i, "reason": why} for i, why in sorted(indicator_set.skipped.items())
                    ]
                typer.echo(json.dumps(result))
            else:
                for item in rejections[:SHOWN_REJECTIONS]:
                    typer.echo(f"line {item['line']}: rejected ({item['field']}): {item['reason']}", err=True)
                if len(rejections) > SHOWN_REJECTIONS:
                    more = len(rejections) - SHOWN_REJECTIONS
                    typer.echo(f"… and {more:,} more rejected events (--json lists all)", err=True)
            typer.echo(summary, err=True)
    except ExchangeError as exc:
        fail(exc.message)
    finally:
        engine.dispose()
    if rejections:
        raise typer.Exit(1)


# --- demo --------------------------------------------------------------------------------------------
