"""The live stream route (``live.stream``)."""

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from indicator_exchange.audit.context import CollectionSeen, record_of
from indicator_exchange.auth.service import Caller
from indicator_exchange.dependencies import CallerDep, SettingsDep
from indicator_exchange.errors import Unavailable
from indicator_exchange.fields import Name
from indicator_exchange.openapi import json_responses
from indicator_exchange.services import services
from indicator_exchange.stream import service
from indicator_exchange.stream.events import Stream

router = APIRouter(prefix="/api/v1", tags=["live"])

STREAM_RESPONSES = {
    200: {
        "description": '`text/event-stream`: `event: objects` (`id`: the position, `data`: `{"objects": [...]}`), '
        "`event: heartbeat` at least every IX_LIVE_HEARTBEAT_SECONDS with the current position, and `event: end` "
        "when the stream must stop (key revoked, grant removed, collection deleted).",
        # One Server-Sent Event, as OpenAPI 3.2 and schemathesis read an event stream's schema: per event.
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "event": {"type": "string", "enum": ["objects", "heartbeat", "end"]},
                        "id": {"type": "string", "description": "the stream position (a TAXII next token)"},
                        "data": {"type": "string", "description": "JSON: objects, position or reason"},
                        "retry": {"type": "integer"},
                    },
                    "required": ["data"],
                }
            }
        },
    },
    **json_responses(400, 403, 404, 503),
}


def _open(request: Request, caller: Caller, collection_id: str) -> service.StreamTarget:
    with services(request).sessions.statements() as session:
        target = service.open_stream(session, caller, collection_id)
    record_of(request).collection = CollectionSeen(id=target.id, default_tlp=target.default_tlp, clock=target.clock)
    return target


@router.get("/collections/{collection_id}/stream", summary="Live stream of a collection", responses=STREAM_RESPONSES)
async def stream(
    request: Request,
    # NUL-free and bounded like every stored name: PostgreSQL text cannot hold a NUL, and the lookup was a 500.
    collection_id: Annotated[Name, Path(description="Collection id or alias.")],
    caller: CallerDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event id (or a `next` token of a match[version]=all read).")
    ] = None,
    added_after: Annotated[
        str | None, Query(description="Resume after this date_added (UTC timestamp), when no Last-Event-ID is sent.")
    ] = None,
) -> StreamingResponse:
    """Every version committed to the collection after the position, as Server-Sent Events (docs/live.md)."""
    target = await run_in_threadpool(_open, request, caller, collection_id)
    position = service.start_position(target, last_event_id=last_event_id, added_after=added_after)
    hub = services(request).live_hub
    assert hub is not None
    if hub.streams + hub.waiting() >= settings.live_max_waiters:
        raise Unavailable(f"this worker already serves {settings.live_max_waiters} live subscribers", retry_after=5)
    subscriber = Stream(request, caller, target, position, settings)
    return StreamingResponse(
        subscriber.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
