"""The ``push`` and ``fingerprint`` commands: detector output into ingestion, prompt signatures."""

import json
import sys
from typing import Annotated

import typer

from indicator_exchange.cli.common import (
    JsonOpt,
    fail,
    load_settings,
    require_schema,
)
from indicator_exchange.errors import ExchangeError


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
    from indicator_exchange.runtime import tune_garbage_collector

    tune_garbage_collector()
    from indicator_exchange.ingest.push import push_file, summary_lines

    settings = load_settings()
    if url is None:
        require_schema(settings)
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
        fail(exc.message)
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


def fingerprint(
    file: Annotated[str, typer.Argument(help="A file holding one prompt; '-' reads standard input.")] = "-",
    as_json: JsonOpt = False,
) -> None:
    """Compute a prompt's x-llm-prompt signature (SHA-256, keyed LSH bands) with IX_COMMUNITY_KEY."""
    from indicator_exchange.stix.fingerprint import fingerprint_prompt
    from indicator_exchange.stix.patterns import prompt_observable

    text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()  # noqa: SIM115
    settings = load_settings()
    result = fingerprint_prompt(text, key=settings.community_key_bytes, key_id=settings.community_key_id)
    observable = prompt_observable(result)
    if as_json:
        typer.echo(json.dumps(observable, indent=2))
    else:
        typer.echo(
            f"sha256: {result.sha256}\nnormalized_length: {result.normalized_length}\n"
            f"key_id: {result.key_id}\nlsh_bands: {' '.join(result.lsh_bands)}"
        )
