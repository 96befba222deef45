"""``POST /api/v1/detections``: detectors push detections as a JSON array or NDJSON."""

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from indicator_exchange.dependencies import CallerDep, SessionDep, SettingsDep, objects_written
from indicator_exchange.errors import PayloadTooLarge
from indicator_exchange.fields import Name
from indicator_exchange.ingest import service
from indicator_exchange.ingest.parsing import is_ndjson, parse_json_array, stream_ndjson
from indicator_exchange.ingest.schemas import IngestResult
from indicator_exchange.openapi import json_responses

router = APIRouter(prefix="/api/v1", tags=["detector ingestion"])

DETECTIONS_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            # Per line: an item that is not a Detection is rejected on its own (the rest of the batch goes on), so
            # the body is an array of anything, and the answer says what became of each.
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/Detection"},
                            {"description": "Anything else: that line is rejected, the rest are ingested."},
                        ]
                    },
                },
                "example": [
                    {
                        "kind": "proxy_ip",
                        "detector": "hydra-detector",
                        "first_seen": "2026-12-01T00:00:00Z",
                        "last_seen": "2026-12-01T06:00:00Z",
                        "confidence": 80,
                        "value": "46.91.113.57",
                        "proxy_kind": "residential",
                        "accounts_linked": 412,
                    }
                ],
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "One detection JSON per line."}},
        },
    }
}


@router.post(
    "/detections",
    summary="Push detections",
    openapi_extra=DETECTIONS_DOC,
    response_model=IngestResult,
    responses=json_responses(403, 404, 413, 415),
)
async def push_detections(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    collection: Annotated[Name | None, Query(description="Target collection id (default: your only one).")] = None,
) -> Response:
    """Convert detections to STIX 2.1 indicators; answers one outcome per input line (detector principals)."""
    limit = settings.max_detections_per_request
    if is_ndjson(request.headers.get("content-type")):
        lines = await stream_ndjson(request.stream(), max_items=limit, max_bytes=settings.max_content_length)
    else:
        declared = request.headers.get("content-length")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > settings.max_content_length:
            raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {settings.max_content_length}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_content_length:
                raise PayloadTooLarge(f"the body exceeds the limit of {settings.max_content_length} bytes")
        lines = parse_json_array(body, max_items=limit)

    def run() -> dict[str, object]:
        target = service.target_collection(session, caller, collection)
        return service.ingest(session, caller=caller, collection=target, lines=lines, settings=settings).as_dict()

    # The session is synchronous: its work runs in the thread pool, never on the event loop.
    answer = await run_in_threadpool(run)
    objects_written(request)
    return Response(orjson.dumps(answer), media_type="application/json")
