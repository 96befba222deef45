"""``GET /api/v1/collections/{collection_id}/stream``: a collection as Server-Sent Events (docs/live.md).

Plain ``StreamingResponse`` rather than ``sse-starlette``: the framing is four lines, our heartbeat must carry
the position as an event id (a comment ping cannot), and every event is read through our own keyset path, so
the package would add a dependency and its own ping task without removing any of our code.

An idle stream costs no database work: between commits it waits on the worker's hub (``live.hub``); the
heartbeat repeats the position it already knows. A commit to the collection wakes it and it reads every
version after its position, each batch a TAXII poll through ``taxii.poll.serve_poll`` (one keyset statement
per batch on PostgreSQL); a change to principals, keys or grants wakes it and it authenticates again (the key
revoked or the grant gone: the stream ends). Each delivered batch is audited and charged to the key's daily
object quota as it is sent; a stream whose quota runs out ends.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import anyio
import orjson
from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from indicator_exchange import metrics
from indicator_exchange.audit.context import CollectionSeen, record_of
from indicator_exchange.audit.context import Served as AuditServed
from indicator_exchange.audit.middleware import build_record
from indicator_exchange.audit.service import AuditRecord
from indicator_exchange.auth.limits import charge_quota
from indicator_exchange.auth.service import Caller
from indicator_exchange.dependencies import confirm_caller
from indicator_exchange.errors import ExchangeError, Hidden, NotFound, NotPermitted, Unauthorized
from indicator_exchange.live.hub import Hub
from indicator_exchange.services import services
from indicator_exchange.settings import Settings
from indicator_exchange.stream import service
from indicator_exchange.taxii.poll import PollContext, Served, serve_poll

log = logging.getLogger(__name__)

BATCH_DETAIL = "stream batch"  # the audit row of one delivered batch (the connection's row says how many)
GRANT_REASON = "the read grant on this collection was removed"
QUOTA_REASON = "this key's daily object quota is used up (UTC day); reconnect tomorrow"
_BEHIND_SECONDS = 0.05


def frame(event: str, event_id: str | None, data: bytes) -> bytes:
    """One SSE event; a payload with line breaks is split into ``data:`` lines (the client joins them)."""
    head = b"event: " + event.encode() + b"\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    lines = data.split(b"\n")
    return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def objects_payload(objects: Sequence[bytes]) -> bytes:
    return b'{"objects":[' + b",".join(objects) + b"]}"


class Stream:
    """One subscriber: its caller, collection and position. Each batch is a TAXII poll of the collection served
    by ``taxii.poll.serve_poll`` with this stream's ``PollContext`` (the caller, its record and how to confirm
    it), so a stream sees exactly what the same caller's polls would."""

    def __init__(
        self, request: Request, caller: Caller, target: service.StreamTarget, position: int | None, settings: Settings
    ) -> None:
        self.request = request
        self.target = target
        self.position = position or 0
        self.settings = settings
        self.app = services(request)
        assert self.app.live_hub is not None
        self.hub: Hub = self.app.live_hub
        self.record = record_of(request)
        self.ctx = PollContext(self.app, caller, self.record, partial(confirm_caller, request))
        # The key's daily object quota as admitted at connect (None: no quota); charged batch by batch.
        self.remaining = self.record.objects_remaining
        self.delivered = 0
        self.batches = 0

    @property
    def caller(self) -> Caller:
        return self.ctx.caller

    async def _read(self) -> Served:
        """The next batch. Streams that would read the same page (same collection, clearance, position, size
        and auth epoch: a commit wakes them together) share one read: the first reads, the others wait for
        its answer, so one commit costs one read per clearance, not one per subscriber. What a stream may see
        depends on its clearance alone once its own grant is checked; one that joined a read that failed
        reads for itself (its own error is the answer)."""
        limit = self.settings.live_batch_size
        if self.remaining is not None:
            limit = max(1, min(limit, self.remaining))
        poll = service.poll_request(self.target, after=self.position, limit=limit)
        key = (self.target.id, self.caller.clearance, self.position, limit, self.record.auth_epoch)
        joined = self.hub.reads.get(key)
        if joined is not None and service.may_read(self.caller, self.target):
            try:
                shared = await asyncio.shield(joined)
            except Exception:
                shared = None
            if isinstance(shared, Served):
                metrics.STREAM_READS.labels("shared").inc()
                return shared
            metrics.STREAM_READS.labels("own").inc()
            return await serve_poll(self.ctx, poll)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self.hub.reads[key] = future
        metrics.STREAM_READS.labels("own").inc()
        try:
            served = await serve_poll(self.ctx, poll)
            future.set_result(served)
            return served
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else _Abandoned())
            raise
        finally:
            if self.hub.reads.get(key) is future:
                del self.hub.reads[key]

    def _still_allowed(self) -> str | None:
        """Authenticate again after a change to principals, keys or grants; why the stream must end, or None."""
        try:
            self.ctx.caller = confirm_caller(self.request)
        except ExchangeError as exc:
            return f"the API key is no longer valid ({exc.status_code})"
        if not service.may_read(self.caller, self.target):
            return GRANT_REASON
        return None

    def _batch_record(self, served: Served) -> AuditRecord:
        """The audit row of one delivered batch."""
        page = served.page
        facts = replace(
            self.record,
            caller=self.caller,
            collection=CollectionSeen(self.target.id, self.target.default_tlp, page.clock or 0),
            served=AuditServed(page.count, page.first_added, page.last_added),
            object_count=None,
            detail=BATCH_DETAIL,
        )
        return build_record(self.request.scope, facts, 200, b"", datetime.now(UTC))

    def _charge(self, count: int) -> None:
        """The batch's objects charged to the key's daily quota (thread pool: one short write)."""
        key_id = self.caller.key_id
        if key_id is not None:
            charge_quota(self.app.sessions.bookkeeping_statements, key_id=key_id, count=count, now=datetime.now(UTC))
            self.record.quota_charged += count

    async def _account(self, served: Served) -> None:
        """Audit the batch (queued: the writer's thread writes many streams' rows in one transaction) and charge
        it to the quota, if the key has one. Shielded: a client that hangs up cannot erase its trace."""
        entry = self._batch_record(served)
        with anyio.CancelScope(shield=True):
            if not self.app.audit_writer.enqueue(entry):
                await anyio.to_thread.run_sync(self.app.audit_writer.write, entry)
            if self.remaining is not None:
                await anyio.to_thread.run_sync(self._charge, served.page.count)

    def _id(self) -> str:
        return service.event_id(self.target, self.position)

    def _heartbeat(self) -> bytes:
        return frame("heartbeat", self._id(), orjson.dumps({"position": self._id()}))

    async def events(self) -> AsyncIterator[bytes]:
        self.hub.streams += 1
        metrics.stream_subscribed()
        try:
            yield b"retry: 1000\n\n" + self._heartbeat()
            async for chunk in self._run():
                yield chunk
        finally:
            self.hub.streams -= 1
            metrics.stream_unsubscribed()
            self.record.object_count = self.delivered
            self.record.detail = f"stream: {self.batches} batches"

    async def _batch(self) -> Served | bytes:
        """The next batch, or the ``end`` event when the stream must stop (collection gone, grant removed)."""
        try:
            served = await self._read()
        except Hidden:  # the grant went (or the collection, as this caller may know of it)
            return frame("end", self._id(), orjson.dumps({"reason": GRANT_REASON}))
        except NotFound:
            return frame("end", None, orjson.dumps({"reason": "the collection was deleted"}))
        except NotPermitted:
            return frame("end", self._id(), orjson.dumps({"reason": GRANT_REASON}))
        except Unauthorized as exc:
            reason = f"the API key is no longer valid ({exc.status_code})"
            return frame("end", self._id(), orjson.dumps({"reason": reason}))
        if served.clock is None:
            return frame("end", None, orjson.dumps({"reason": "the collection was deleted"}))
        return served

    async def _run(self) -> AsyncIterator[bytes]:
        heartbeat = self.settings.live_heartbeat_seconds
        clock = anyio.current_time
        sent = clock()  # events() has just sent one: every event restarts the heartbeat's count
        mark = self.hub.mark()
        last_clock: int | None = None
        stale = 0
        while True:
            batch = await self._batch()
            if isinstance(batch, bytes):
                yield batch
                return
            read_clock = batch.clock
            assert read_clock is not None
            page = batch.page
            if page.count and batch.position is not None:
                self.position = batch.position
                self.delivered += page.count
                self.batches += 1
                yield frame("objects", self._id(), objects_payload(page.objects))
                sent = clock()
                if self.remaining is not None:
                    self.remaining -= page.count
                await self._account(batch)
                if self.remaining is not None and self.remaining <= 0:
                    yield frame("end", self._id(), orjson.dumps({"reason": QUOTA_REASON}))
                    return
            if batch.more:
                mark = self.hub.mark()
                continue
            # Everything up to the clock has been read: objects filtered out of this caller's view are passed.
            self.position = max(self.position, read_clock)
            stale = stale + 1 if last_clock is not None and read_clock <= last_clock and not page.count else 0
            if stale > 1:
                # Woken again and again by a commit the reads do not see yet (a replica behind the primary, or a
                # shared read that began before the commit): not a busy loop.
                await anyio.sleep(_BEHIND_SECONDS)
            last_clock = read_clock
            while True:
                due = max(0.0, sent + heartbeat - clock())
                wake = await self.hub.wait(self.target.id, read_clock=read_clock, mark=mark, timeout=due)
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


class _Abandoned(Exception):
    """The stream that made a shared read went away (cancelled) before it was answered."""


def _retrieved(future: "asyncio.Future[object]") -> None:
    # A shared read's failure is its own stream's to report; one nobody joined must not be logged as lost.
    if not future.cancelled():
        future.exception()
