"""The ``lifecycle`` commands: an indicator's live score, feedback, warninglist hits and history."""

import json
from typing import Annotated

import typer

from indicator_exchange.cli.common import fail, load_settings, require_schema

lifecycle_app = typer.Typer(help="Indicator lifecycle: scores, partner feedback, warninglists (docs/lifecycle.md).")


@lifecycle_app.command("show")
def show(
    indicator_id: Annotated[str, typer.Argument(help="The indicator's STIX id (indicator--...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole view as JSON.")] = False,
) -> None:
    """Score (and its components), TP/FP per organisation, warninglist hits, valid_until, versions and feedback."""
    from indicator_exchange.errors import ExchangeError
    from indicator_exchange.lifecycle import service
    from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope

    settings = load_settings()
    require_schema(settings)
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            view = service.view(session, indicator_id=indicator_id, caller=None, settings=settings)
    except ExchangeError as exc:
        fail(str(exc))
        return
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    score = view["score"]
    typer.echo(
        f"{view['id']} ({score['kind']}; {'ours' if view['ours'] else view['created_by_ref'] or 'unattributed'})"
    )
    enforced = "enforced" if view["enforced"] else f"not enforced: {view['why_not_enforced']}"
    typer.echo(f"score {score['score']} / threshold {score['threshold']:g}: {enforced}")
    typer.echo(
        f"  base {score['base']} = base0 {score['base0']:g} x (TP {score['true_positives']} + 1) / "
        f"(TP + FP {score['false_positives']} + 2) x 2; t = {score['elapsed_seconds']:.0f} s since {score['anchor']}; "
        f"tau {score['tau_seconds']:.0f} s, delta {score['delta']:g}"
    )
    typer.echo(f"valid {view['valid_from']} .. {view['valid_until']}{'; REVOKED' if view['revoked'] else ''}")
    for organisation, counts in sorted(view["organisations"].items()):
        typer.echo(f"  {organisation}: {counts['tp']} TP, {counts['fp']} FP, {counts['neutral']} neutral")
    for hit in view["warninglists"]:
        typer.echo(f"  warninglist {hit['list']} ({hit['policy']}): {hit['value']}")
    for version in view["versions"]:
        typer.echo(f"  version {version['modified']}{' (revoked)' if version['revoked'] else ''}")
    for event in view["events"]:
        typer.echo(f"  {event['at']} {event['action']}: {event['reason']}")
