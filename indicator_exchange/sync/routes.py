"""``POST /api/v1/match``: check API-traffic events against the active indicators the caller may read."""

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from indicator_exchange.dependencies import CallerDep, SessionDep, SettingsDep
from indicator_exchange.errors import BadRequest, PayloadTooLarge
from indicator_exchange.fields import Name
from indicator_exchange.ingest.parsing import is_ndjson, parse_json_array, stream_ndjson
from indicator_exchange.openapi import json_responses
from indicator_exchange.sync import matching
from indicator_exchange.sync.events import Match, TrafficEvent

router = APIRouter(prefix="/api/v1", tags=["matching"])

MATCH_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/TrafficEvent"}}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "One event JSON per line."}},
        },
    }
}


class MatchResult(BaseModel):
    """The answer to ``POST /api/v1/match`` (documentation; the route builds it as a dict)."""

    events: int = Field(description="Events read.")
    matches: list[Match]
    indicators: int = Field(description="Active indicators matched against.")
    sightings: dict[str, int] | None = Field(
        None, description="With sightings=true: sightings stored and skipped (`{sightings, skipped}`)."
    )


def parse_events(values: list[object]) -> list[TrafficEvent]:
    events = []
    for index, value in enumerate(values):
        try:
            events.append(TrafficEvent.model_validate(value))
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise BadRequest(f"event {index + 1}: {where}: {first.get('msg')}") from None
    return events


@router.post(
    "/match", summary="Match traffic events", openapi_extra=MATCH_DOC, response_model=MatchResult,
    responses=json_responses(403, 404, 413, 415),
)  # fmt: skip
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
        bad = next((line for line in lines if line.error), None)
        if bad is not None:
            raise BadRequest(f"line {bad.line}: {bad.error}")
        values = [line.value for line in lines]
    else:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_content_length:
                raise PayloadTooLarge(f"the body exceeds the limit of {settings.max_content_length} bytes")
        values = [line.value for line in parse_json_array(body, max_items=limit)]
    events = parse_events(values)

    def run() -> dict[str, object]:
        now = datetime.now(UTC)
        ids = matching.readable_collections(session, caller, collection or [])
        indicator_set = matching.cached_indicator_set(session, ids, clearance=caller.clearance, settings=settings,
                                                      now=now, min_lsh_bands=1 if candidates else 2)  # fmt: skip
        found = matching.match_events(indicator_set, events)
        result: dict[str, object] = {
            "events": len(events),
            "matches": [m.model_dump(mode="json") for m in found],
            "indicators": indicator_set.compiled.indicator_count,
        }
        if sightings:
            verified = [m for m in found if m.verified]
            result["sightings"] = matching.record_sightings(session, indicator_set, verified, settings=settings,
                                                            caller=caller, now=now)  # fmt: skip
        return result

    return Response(orjson.dumps(await run_in_threadpool(run)), media_type="application/json")
