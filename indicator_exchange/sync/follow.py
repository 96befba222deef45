"""``sync --follow``: keep pull sources in step with their partners, live (docs/live.md).

Per source, the best the partner offers, found by probing: its stream (a server running indicator-exchange:
``GET /api/v1/collections/{id}/stream``), else a TAXII long poll (the server applies ``Prefer: wait``), else
plain polls at an adaptive interval (1 s after a page that stored something, doubling up to the source's
interval). Every batch is stored with the source's bookmark in one transaction (``service.store_batch``), so
a follower killed at any point resumes from the last committed batch: nothing lost, nothing stored twice.
Connection failures (the partner's or our own database's) are retried with backoff, for ever, until ``stop``.

The bookmark keeps its meaning across modes: the ``date_added`` of the last object received, as a TAXII
timestamp. A stream's event id is a position of that server; ours is a ``next`` token whose position is that
``date_added`` in µs, which a server running indicator-exchange also accepts as ``added_after``.
"""

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.errors import ExchangeError
from indicator_exchange.stix.objects import format_timestamp_us
from indicator_exchange.store import sources
from indicator_exchange.store.engine import session_scope
from indicator_exchange.sync import service
from indicator_exchange.sync.taxii_client import RemoteError, RetryPolicy, credentials_auth
from indicator_exchange.taxii.filters import decode_cursor

log = logging.getLogger(__name__)

STREAM, LONG_POLL, POLL = "stream", "long-poll", "poll"
LONG_POLL_SECONDS = 25  # under the 30 s servers may hold a poll (RFC 7240 wait; ours: IX_LIVE_MAX_WAIT_SECONDS)
# A stream sends a heartbeat at least every 15 s: three missed and the connection is taken for dead.
STREAM_READ_TIMEOUT = 45.0
MAX_BACKOFF = 30.0


@dataclass(slots=True)
class FollowEvent:
    """One batch (or state change) of one source, for the progress display and the log."""

    source: str
    mode: str
    stored: int = 0
    received: int = 0
    duplicates: int = 0
    rejected: int = 0
    bookmark: str | None = None
    note: str | None = None
    totals: dict[str, int] = field(default_factory=dict)


Reporter = Callable[[FollowEvent], None]


def stream_url(collection_url: str) -> str:
    """Where a server running indicator-exchange streams the collection behind a TAXII collection URL."""
    parts = urlsplit(collection_url)
    collection_id = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return f"{parts.scheme}://{parts.netloc}/api/v1/collections/{collection_id}/stream"


def _auth(secret: str | None) -> httpx.Auth | dict[str, str]:
    """httpx auth for a source's credential (the same forms ``taxii_client.credentials_auth`` accepts)."""
    kwargs = credentials_auth(secret)
    if "user" in kwargs:
        return httpx.BasicAuth(kwargs["user"], kwargs["password"])
    if secret:
        return {"Authorization": f"Bearer {secret.split(' ', 1)[1].strip()}"}
    return {}


@dataclass(slots=True)
class _Source:
    id: uuid.UUID
    name: str
    url: str
    secret: str | None
    interval: int
    bookmark: str | None


def _load(sessions: sessionmaker[Session], name: str) -> _Source:
    with session_scope(sessions) as session:
        found = sources.get_source(session, name)
        if found is None:
            raise ExchangeError(f"there is no source {name!r}")
        return _Source(
            found.id,
            found.name,
            found.collection_url,
            service.resolve_credentials(found.credentials_ref),
            found.interval_seconds,
            found.bookmark,
        )


def _status(sessions: sessionmaker[Session], source_id: uuid.UUID, **values: Any) -> None:
    with session_scope(sessions) as session:
        found = sources.get_source_by_id(session, source_id)
        if found is not None:
            for key, value in values.items():
                setattr(found, key, value)


class Follower:
    """Follows one source until ``stop`` is set."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        name: str,
        *,
        stop: threading.Event,
        report: Reporter,
        retry: RetryPolicy | None = None,
        long_poll_seconds: int = LONG_POLL_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.name = name
        self.stop = stop
        self.report = report
        self.retry = retry or RetryPolicy(base_delay=0.5, max_delay=MAX_BACKOFF)
        self.long_poll_seconds = long_poll_seconds
        self.mode: str | None = None
        self.totals = {"stored": 0, "received": 0, "batches": 0}

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                source = _load(self.sessions, self.name)
                self.mode = self.mode or self._probe(source)
                _status(
                    self.sessions,
                    source.id,
                    live_mode=self.mode,
                    live_connected_at=datetime.now(UTC),
                    live_seen_at=datetime.now(UTC),
                )
                self.report(FollowEvent(self.name, self.mode, bookmark=source.bookmark, note="connected"))
                if self.mode == STREAM:
                    self._stream(source)
                else:
                    self._poll(source)
                failures = 0
            except (httpx.HTTPError, RemoteError, SQLAlchemyError, OSError, _Refused) as exc:
                if self.stop.is_set():
                    break
                failures += 1
                delay = self.retry.delay(min(failures, 10))
                self.report(FollowEvent(self.name, self.mode or "-", note=f"{_describe(exc)}; again in {delay:.1f}s"))
                self._disconnected()
                if isinstance(exc, _Refused) and exc.reprobe:
                    self.mode = None
                self.stop.wait(delay)
        self._disconnected()

    def _disconnected(self) -> None:
        try:
            with session_scope(self.sessions) as session:
                found = sources.get_source(session, self.name)
                if found is not None:
                    found.live_connected_at = None
        except SQLAlchemyError:
            pass  # our own database is away; the status is refreshed when it is back

    # --- probing ------------------------------------------------------------------------------------------

    def _probe(self, source: _Source) -> str:
        auth = _auth(source.secret)
        headers = {"Accept": "text/event-stream"} | (auth if isinstance(auth, dict) else {})
        basic = auth if isinstance(auth, httpx.BasicAuth) else None
        with httpx.Client(timeout=10.0, auth=basic, headers=headers) as client:
            with client.stream("GET", stream_url(source.url), params={"added_after": _far_future()}) as response:
                kind = response.headers.get("content-type", "")
                if response.status_code == 200 and kind.startswith("text/event-stream"):
                    return STREAM
            probe = client.get(
                source.url.rstrip("/") + "/objects/",
                params={"added_after": _far_future(), "limit": "1"},
                headers={"Accept": "application/taxii+json;version=2.1", "Prefer": "wait=0"},
            )
            if probe.status_code == 200 and probe.headers.get("preference-applied", "").startswith("wait"):
                return LONG_POLL
        return POLL

    # --- stream ------------------------------------------------------------------------------------------

    def _stream(self, source: _Source) -> None:
        auth = _auth(source.secret)
        headers = {"Accept": "text/event-stream"} | (auth if isinstance(auth, dict) else {})
        basic = auth if isinstance(auth, httpx.BasicAuth) else None
        params = {"added_after": source.bookmark} if source.bookmark else {}
        timeout = httpx.Timeout(STREAM_READ_TIMEOUT, connect=10.0)
        with (
            httpx.Client(timeout=timeout, auth=basic, headers=headers) as client,
            client.stream("GET", stream_url(source.url), params=params) as response,
        ):
            if response.status_code != 200:
                response.read()
                raise _Refused(f"the stream answered {response.status_code}", reprobe=response.status_code == 404)
            for event, event_id, data in _events(response.iter_lines()):
                if self.stop.is_set():
                    return
                position = _position(event_id)
                if event == "objects":
                    payload = orjson.loads(data)
                    self._store(source, payload.get("objects") or [], position)
                elif event == "heartbeat" and position is not None:
                    self._heard(source, position)
                elif event == "end":
                    raise _Refused(f"the partner ended the stream: {data}", reprobe=True)
        if not self.stop.is_set():
            raise _Refused("the partner closed the stream", reprobe=False)

    def _store(self, source: _Source, objects: list[object], position: str | None) -> None:
        result = service.SyncResult(source=source.name)
        with session_scope(self.sessions) as session:
            found = sources.get_source_by_id(session, source.id)
            assert found is not None
            service.store_batch(session, found, objects, result)
            if position is not None:
                found.bookmark = position
            now = datetime.now(UTC)
            found.live_seen_at = now
            found.live_remote_position = found.bookmark
            found.last_run_at = found.last_success_at = now
            found.last_outcome, found.last_error = "ok", None
            source.bookmark = found.bookmark
        self._reported(source, result)

    def _heard(self, source: _Source, position: str) -> None:
        with session_scope(self.sessions) as session:
            found = sources.get_source_by_id(session, source.id)
            assert found is not None
            found.live_seen_at = datetime.now(UTC)
            found.live_remote_position = position
            # A heartbeat's position follows everything the partner let us see: objects filtered out of our
            # view are passed, so the bookmark moves with it.
            found.bookmark = position
            source.bookmark = position

    def _reported(self, source: _Source, result: service.SyncResult) -> None:
        self.totals["stored"] += result.stored
        self.totals["received"] += result.received
        self.totals["batches"] += 1
        self.report(
            FollowEvent(
                source.name,
                self.mode or "-",
                stored=result.stored,
                received=result.received,
                duplicates=result.duplicates,
                rejected=result.rejected,
                bookmark=source.bookmark,
                totals=dict(self.totals),
            )
        )

    # --- polls -------------------------------------------------------------------------------------------

    def _poll(self, source: _Source) -> None:
        wait = 1.0
        long_poll = self.mode == LONG_POLL
        while not self.stop.is_set():
            seen: list[service.SyncResult] = []
            result = service.pull(
                self.sessions,
                source.name,
                retry=self.retry,
                stop=self.stop,
                on_page=seen.append,
                prefer_wait=self.long_poll_seconds if long_poll else None,
                exact=long_poll,
            )
            if result.outcome == "error":
                raise _Refused(result.error or "the pull failed", reprobe=True)
            _status(self.sessions, source.id, live_seen_at=datetime.now(UTC), live_remote_position=result.bookmark)
            source.bookmark = result.bookmark
            if result.received:
                self._reported(source, result)
            if long_poll:
                continue  # the server held the empty poll: ask again at once
            wait = 1.0 if result.stored else min(float(source.interval), wait * 2)
            self.stop.wait(wait)


class _Refused(Exception):
    def __init__(self, message: str, *, reprobe: bool) -> None:
        super().__init__(message)
        self.reprobe = reprobe


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


def _far_future() -> str:
    return "2999-01-01T00:00:00Z"


def _position(event_id: str | None) -> str | None:
    """The bookmark (a TAXII timestamp) an event id stands for; ``None`` if it is not one of ours."""
    if not event_id:
        return None
    try:
        return format_timestamp_us(decode_cursor(event_id).position)
    except ExchangeError:
        return None


def _events(lines: Iterator[str]) -> Iterator[tuple[str, str | None, str]]:
    """SSE events as (event, id, data) from a stream's lines."""
    event, event_id, data = "message", None, list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, event_id, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "id":
            event_id = value
        elif name == "data":
            data.append(value)


def follow(
    sessions: sessionmaker[Session],
    names: list[str],
    *,
    stop: threading.Event,
    report: Reporter,
    retry: RetryPolicy | None = None,
) -> None:
    """Follow every source of ``names`` (one thread each) until ``stop`` is set."""
    threads = [
        threading.Thread(
            target=Follower(sessions, name, stop=stop, report=report, retry=retry).run,
            name=f"follow-{name}",
            daemon=True,
        )
        for name in names
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads) and not stop.is_set():
        stop.wait(0.5)
    # A follower blocked reading a quiet stream notices ``stop`` only at the next heartbeat. Abandoning it is
    # safe: every batch is one transaction with its bookmark, so what was not committed is read again.
    for thread in threads:
        thread.join(timeout=2.0)
