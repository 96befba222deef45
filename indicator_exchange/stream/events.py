"""``GET /api/v1/collections/{collection_id}/stream``: a collection as Server-Sent Events (docs/live.md).

Plain ``StreamingResponse`` rather than ``sse-starlette``: the framing is four lines, our heartbeat must carry
the position as an event id (a comment ping cannot), and every event is read through our own keyset path, so
the package would add a dependency and its own ping task without removing any of our code.

An idle stream costs no database work: between commits it waits on the worker's hub (``live.hub``); the
heartbeat repeats the position it already knows. A commit to the collection wakes it and it reads every
version after its position (one keyset statement per batch); a change to principals, keys or grants wakes it
and it authenticates again (the key revoked or the grant gone: the stream ends).
"""

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import anyio
import orjson
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from indicator_exchange.audit.context import CollectionSeen, Served, record_of
from indicator_exchange.audit.middleware import build_record
from indicator_exchange.auth.service import Caller
from indicator_exchange.dependencies import confirm_caller
from indicator_exchange.errors import ExchangeError
from indicator_exchange.live.hub import Hub
from indicator_exchange.services import services
from indicator_exchange.settings import Settings
from indicator_exchange.stream import service

log = logging.getLogger(__name__)

BATCH_DETAIL = "stream batch"  # the audit row of one delivered batch (the connection's row says how many)


def frame(event: str, event_id: str | None, data: bytes) -> bytes:
    """One SSE event; a payload with line breaks is split into ``data:`` lines (the client joins them)."""
    head = b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    lines = data.split(b"\n")
    return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def objects_payload(objects: list[bytes]) -> bytes:
    return b'{"objects":[' + b",".join(objects) + b"]}"


class Stream:
    """One subscriber: its caller, collection and position."""

    def __init__(
        self, request: Request, caller: Caller, target: service.StreamTarget, position: int | None, settings: Settings
    ) -> None:
        self.request = request
        self.caller = caller
        self.target = target
        self.position = position or 0
        self.settings = settings
        self.app = services(request)
        assert self.app.live_hub is not None
        self.hub: Hub = self.app.live_hub
        self.record = record_of(request)
        self.delivered = 0
        self.batches = 0

    def _read(self) -> service.Batch:
        # With read replicas, one that has replayed the collection's clock the primary has now (no batch is
        # staler than the notification that woke the stream), else the primary.
        return self.app.read_fresh(
            lambda session: service.read_batch(
                session, self.caller, self.target, after=self.position, limit=self.settings.live_batch_size
            ),
            collection_id=self.target.id,
            statements=True,
        )

    def _still_allowed(self) -> str | None:
        """Authenticate again after a change to principals, keys or grants; why the stream must end, or None."""
        try:
            self.caller = confirm_caller(self.request)
        except ExchangeError as exc:
            return f"the API key is no longer valid ({exc.status_code})"
        if not service.may_read(self.caller, self.target):
            return "the read grant on this collection was removed"
        return None

    def _audit(self, batch: service.Batch, count: int) -> None:
        facts = replace(
            self.record,
            caller=self.caller,
            collection=CollectionSeen(self.target.id, self.target.default_tlp, batch.clock or 0),
            served=Served(count, batch.first_added, batch.last_added),
            object_count=None,
            detail=BATCH_DETAIL,
        )
        self.app.audit_writer.write(build_record(self.request.scope, facts, 200, b"", datetime.now(UTC)))

    def _id(self) -> str:
        return service.event_id(self.target, self.position)

    def _heartbeat(self) -> bytes:
        return frame("heartbeat", self._id(), orjson.dumps({"position": self._id()}))

    async def events(self) -> AsyncIterator[bytes]:
        self.hub.streams += 1
        try:
            yield b"retry: 1000\n\n" + self._heartbeat()
            async for chunk in self._run():
                yield chunk
        finally:
            self.hub.streams -= 1
            self.record.object_count = self.delivered
            self.record.detail = f"stream: {self.batches} batches"

    async def _run(self) -> AsyncIterator[bytes]:
        heartbeat = self.settings.live_heartbeat_seconds
        clock = anyio.current_time
        sent = clock()  # events() has just sent one: every event restarts the heartbeat's count
        mark = self.hub.mark()
        while True:
            batch = await run_in_threadpool(self._read)
            if batch.clock is None:
                yield frame("end", None, orjson.dumps({"reason": "the collection was deleted"}))
                return
            if batch.objects and batch.last_added is not None:
                self.position = batch.last_added
                self.delivered += len(batch.objects)
                self.batches += 1
                yield frame("objects", self._id(), objects_payload(batch.objects))
                sent = clock()
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(partial(self._audit, batch, len(batch.objects)))
            if batch.more:
                mark = self.hub.mark()
                continue
            # Everything up to the clock has been read: objects filtered out of this caller's view are passed.
            self.position = max(self.position, batch.clock)
            while True:
                due = max(0.0, sent + heartbeat - clock())
                wake = await self.hub.wait(self.target.id, read_clock=batch.clock, mark=mark, timeout=due)
                if wake == "timeout":
                    yield self._heartbeat()
                    sent = clock()
                    continue
                if wake == "closed":
                    return
                mark = self.hub.mark()
                if wake == "auth":
                    refused = await run_in_threadpool(self._still_allowed)
                    if refused is not None:
                        yield frame("end", self._id(), orjson.dumps({"reason": refused}))
                        return
                break
