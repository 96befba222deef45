"""Compliance endpoints: the sharing report and streaming exports (compliance and admin principals only)."""

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import AfterValidator, WithJsonSchema
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.audit.context import note_collection, note_objects
from indicator_exchange.auth.service import Caller, require_kind, require_read
from indicator_exchange.dependencies import CallerDep, SessionDep, SettingsDep
from indicator_exchange.errors import BadRequest
from indicator_exchange.fields import Name, NulFree
from indicator_exchange.openapi import content, json_responses
from indicator_exchange.reports import export, render
from indicator_exchange.reports.context import ReportRequest, parse_when
from indicator_exchange.reports.model import SharingReport
from indicator_exchange.reports.service import build_report
from indicator_exchange.services import services
from indicator_exchange.settings import Settings
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store.engine import database_unavailable

COMPLIANCE_KINDS = ("compliance", "admin")

router = APIRouter(prefix="/api/v1", tags=["compliance"])

# What reports.context.parse_when reads: a date, or a date and time (an offset optional: UTC).
WHEN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"


def _when_form(text: str) -> str:
    # The pattern documents the form; this says in words what a pattern mismatch would only show as a regex.
    if re.fullmatch(WHEN, text) is None:
        raise ValueError(f"{text[:64]!r} is not a date (YYYY-MM-DD) or an ISO 8601 time")
    return text


# Documented with WHEN as its pattern, refused with a sentence.
When = Annotated[str, AfterValidator(_when_form), WithJsonSchema({"type": "string", "pattern": WHEN, "maxLength": 64})]
ReportFormat = Literal["json", "csv", "html", "pdf"]
ExportFormat = Literal["stix", "jsonl", "csv"]
_TEXT: dict[str, object] = {"type": "string"}
REPORT_CONTENT: dict[str, dict[str, object]] = {
    "application/json": {"$ref": "#/components/schemas/SharingReport"},
    "text/csv": _TEXT,
    "text/html": _TEXT,
    "application/pdf": {"type": "string", "format": "binary"},
}
EXPORT_CONTENT: dict[str, dict[str, object]] = {
    "application/stix+json;version=2.1": {"type": "object", "description": "A STIX 2.1 bundle."},
    "application/x-ndjson": {"type": "string", "description": "One STIX object per line."},
    "text/csv": _TEXT,
}


def report_for(
    session: Session,
    caller: Caller,
    settings: Settings,
    *,
    start: str,
    end: str,
    collections: list[str],
    partner: str | None,
) -> SharingReport:
    """The report a compliance or admin caller asked for, limited to what their clearance may see."""
    require_kind(caller, *COMPLIANCE_KINDS)
    request = ReportRequest(
        start=parse_when(start),
        end=parse_when(end, end=True),
        collections=collections,
        partner=partner,
        clearance=Tlp(caller.clearance),
    )
    return build_report(session, request, identity=settings.identity_id, organisation=settings.organisation_name)


def report_response(report: SharingReport, fmt: str, *, inline: tuple[str, ...] = ("html", "json")) -> Response:
    """The rendered report; formats in ``inline`` display in a browser, the others download."""
    if fmt not in render.FORMATS:
        raise BadRequest(f"format must be one of {', '.join(render.FORMATS)}")
    name = f"sharing-report-{report.window.start:%Y%m%d}-{report.window.end:%Y%m%d}.{fmt}"
    disposition = "inline" if fmt in inline else "attachment"
    return Response(
        render.render(report, fmt),
        media_type=render.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "X-Report-Marking": report.marking,
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/reports/sharing",
    summary="Sharing report",
    response_model=None,
    responses={200: content(REPORT_CONTENT, "The report, in the format asked for."), **json_responses(403, 404)},
)
def sharing_report(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    start: Annotated[
        When,
        Query(alias="from", max_length=64, description="Window start: YYYY-MM-DD or ISO 8601 (UTC)."),
    ],
    end: Annotated[
        When,
        Query(alias="to", max_length=64, description="Window end, exclusive; a date: the whole day."),
    ],
    format: Annotated[ReportFormat, Query(description="json, csv, html or pdf.")] = "json",
    collection: Annotated[list[Name] | None, Query(description="Collection ids or aliases (repeatable).")] = None,
    partner: Annotated[Name | None, Query(description="Only this partner (principal or feed source name).")] = None,
) -> Response:
    """What was published, shared, received and refused in a window, marked with its highest TLP."""
    if format not in render.FORMATS:
        raise BadRequest(f"format must be one of {', '.join(render.FORMATS)}")

    def build(source: Session) -> SharingReport:
        return report_for(source, caller, settings, start=start, end=end, collections=collection or [], partner=partner)

    # With read replicas: on one that has replayed everything the primary holds now, else the request's own.
    app = services(request)
    report = build(session) if app.replicas is None else app.read_fresh(build)
    return report_response(report, format)


def export_response(
    request: Request,
    session: Session,
    caller: Caller,
    *,
    collection: str,
    fmt: str,
    since: str | None,
    types: list[str] | None,
    all_versions: bool,
) -> StreamingResponse:
    """Check the caller, then stream the export from a session of its own (the request's closes first)."""
    require_kind(caller, *COMPLIANCE_KINDS)
    if fmt not in export.FORMATS:
        raise BadRequest(f"format must be one of {', '.join(export.FORMATS)}")
    found = export.resolve_collection(session, collection)
    require_read(caller, found)
    plan = export.ExportRequest(
        collection=found,
        clearance=caller.clearance,
        since_us=export.parse_since(since),
        types=export.parse_types(types),
        all_versions=all_versions,
    )
    # A read replica that has replayed the collection's clock and the auth epoch the primary has now, else the
    # primary: the export is never staler than the request. A replica that stops mid-export: the remaining pages
    # come from the primary (keyset pages: nothing lost or repeated).
    app = services(request)
    replica = None if app.replicas is None else app.replicas.fresh(app.sessions.statements, collection_id=found.id)
    factory: sessionmaker[Session] = app.sessions.reads if replica is None else replica.reads

    note_collection(request, found)

    def chunks() -> Iterator[bytes]:
        stats = export.ExportStats()
        with contextlib.ExitStack() as stack:
            export_session = factory()
            stack.callback(export_session.close)

            def fallback(exc: BaseException) -> Session | None:
                if replica is None or app.replicas is None or not database_unavailable(exc):
                    return None
                app.replicas.failed(replica, exc)
                replacement = app.sessions.reads()
                stack.callback(replacement.close)
                return replacement

            yield from export.stream(export_session, plan, fmt, stats, fallback=fallback)
        # The audit row is written once the body is sent: it records how many objects left.
        note_objects(request, stats.objects)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = export.filename(found, fmt).replace(".", f"-{stamp}.", 1)
    return StreamingResponse(
        chunks(),
        media_type=export.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Export-Clearance": f"TLP:{Tlp(caller.clearance).label.upper()}",
        },
    )


@router.get(
    "/export",
    summary="Export a collection",
    response_model=None,
    response_class=StreamingResponse,
    responses={200: content(EXPORT_CONTENT, "The export, streamed."), **json_responses(403, 404)},
)
def export_collection(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    collection: Annotated[Name, Query(description="Collection id or alias.")],
    format: Annotated[ExportFormat, Query(description="stix (a STIX 2.1 bundle), jsonl or csv.")] = "stix",
    since: Annotated[
        NulFree | None, Query(max_length=64, description="Only objects added after this time (RFC 3339 or a date).")
    ] = None,
    type: Annotated[list[NulFree] | None, Query(description="STIX types (repeatable or comma-separated).")] = None,
    all_versions: Annotated[bool, Query(description="Every version, not only the latest.")] = False,
) -> StreamingResponse:
    """Stream a collection slice in bounded memory, filtered by the caller's grant and TLP clearance."""
    return export_response(
        request, session, caller, collection=collection, fmt=format, since=since, types=type, all_versions=all_versions
    )
