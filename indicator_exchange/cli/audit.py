"""The ``admin audit`` group: the audit trail of requests and configuration changes."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from indicator_exchange.cli.common import (
    JsonOpt,
    parse_duration,
    print_result,
    resolve_collection_id,
    run_in_session,
)

audit_app = typer.Typer(help="The audit trail of requests and configuration changes.", no_args_is_help=True)


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
    from indicator_exchange.admin import service as admin

    start = _since(since) if since else None
    events = run_in_session(
        lambda s: admin.list_audit(
            s,
            principal=principal,
            collection_id=resolve_collection_id(s, collection) if collection else None,
            since=start,
            limit=limit,
        )
    )
    print_result(events, as_json, _audit_lines)


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
