"""``POST /api/v1/match``: check API-traffic events against the active indicators the caller may read."""

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.orm import Session

from indicator_exchange.audit.context import note_detail
from indicator_exchange.dependencies import CallerDep, SessionDep, SettingsDep
from indicator_exchange.errors import PayloadTooLarge
from indicator_exchange.fields import Name
from indicator_exchange.ingest.parsing import is_ndjson, parse_json_array, stream_ndjson
from indicator_exchange.match import service as matching
from indicator_exchange.match.events import MatchResult, read_events
from indicator_exchange.match.generation import Generation
from indicator_exchange.openapi import json_responses
from indicator_exchange.services import services

router = APIRouter(prefix="/api/v1", tags=["matching"])

MATCH_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            # Per event: one that is not a TrafficEvent is rejected on its own (reported in `rejections`) and the
            # others are matched, so the body is an array of anything.
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/TrafficEvent"},
                            {"description": "Anything else: that event is rejected, the others are matched."},
                        ]
                    },
                },
                "example": [{"timestamp": "2026-01-01T00:00:00Z", "event_id": "e1", "source_ip": "46.91.113.57"}],
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "One event JSON per line."}},
        },
    }
}


@router.post(
    "/match",
    summary="Match traffic events",
    openapi_extra=MATCH_DOC,
    response_model=MatchResult,
    responses=json_responses(403, 404, 413, 415),
)
async def match(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    collection: Annotated[
        list[Name] | None, Query(description="Collections to match against (default: all readable).")
    ] = None,
    sightings: Annotated[bool, Query(description="Store our sightings of matched indicators (needs write).")] = False,
    candidates: Annotated[bool, Query(description="Also report single-band LSH candidates (verified=false).")] = False,
) -> Response:
    """One match per (event, indicator), within the caller's grants and TLP clearance."""
    limit = settings.max_detections_per_request
    if is_ndjson(request.headers.get("content-type")):
        lines = await stream_ndjson(request.stream(), max_items=limit, max_bytes=settings.max_content_length)
    else:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_content_length:
                raise PayloadTooLarge(f"the body exceeds the limit of {settings.max_content_length} bytes")
        lines = parse_json_array(body, max_items=limit)
    # A malformed event is reported (position, field, reason) and the others are matched all the same.
    batch = read_events(lines)

    def run() -> dict[str, object]:
        now = datetime.now(UTC)

        # The index loads (and its deltas) from a read replica that has replayed everything the primary holds
        # now, else from the request's own session; sightings are written there.
        def load(source: Session) -> Generation:
            ids = matching.readable_collections(source, caller, collection or [])
            return matching.cached_indicator_set(
                source,
                ids,
                clearance=caller.clearance,
                settings=settings,
                now=now,
                min_lsh_bands=1 if candidates else 2,
            )

        app = services(request)
        indicator_set = load(session) if app.replicas is None else app.read_fresh(load)
        found = matching.match_events(indicator_set, batch.events, settings=settings, now=now)
        result: dict[str, object] = {
            "events": len(batch.events),
            "rejected": len(batch.rejections),
            "rejections": [r.model_dump(mode="json") for r in batch.rejections],
            "matches": [m.model_dump(mode="json") for m in found],
            "indicators": indicator_set.indicator_count,
        }
        if sightings:
            verified = [m for m in found if m.verified]
            posted = matching.record_sightings(
                session, indicator_set, verified, settings=settings, caller=caller, now=now
            )
            result["sightings"] = posted
            note_detail(
                request,
                f"sightings written by service caller {matching.SIGHTINGS_JOB} for {caller.name}: "
                f"{posted['sightings']} stored, {posted['skipped']} skipped",
            )
        return result

    return Response(orjson.dumps(await run_in_threadpool(run)), media_type="application/json")
