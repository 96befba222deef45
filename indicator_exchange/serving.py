"""``serve``: uvicorn with every limit explicit — request-head and body timeouts, connections per worker,
listen backlog, keep-alive — plus the checks that must fail before a worker starts (TLS files, the
PostgreSQL connection budget) and an access log without query-string secrets.

uvicorn's HTTP protocols time out idle keep-alive connections only: a connection that sends a partial
request head, or nothing, is held for ever (slowloris). ``GuardedProtocol`` adds the missing timers to
uvicorn's httptools protocol and closes surplus connections cheaply.
"""

import asyncio
import copy
import logging
import os
import ssl
import tempfile
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from indicator_exchange import metrics
from indicator_exchange.audit.middleware import RECORDED_PARAMETERS
from indicator_exchange.observe import json_log_config
from indicator_exchange.settings import Settings, get_settings
from indicator_exchange.store.engine import PoolBudget, connection_allowance, is_sqlite
from indicator_exchange.taxii.media import TAXII_MEDIA_TYPE
from indicator_exchange.taxii.paths import is_taxii_path

log = logging.getLogger(__name__)

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
    b"content-length: 41\r\nconnection: close\r\n\r\ntoo many connections; retry in a second\r\n"
)


WORKER_STARTUP_SECONDS = 30


class StartupRefused(Exception):
    """``serve`` must not start; the message says why, in one line."""


def _edge_answer(status: HTTPStatus, description: str, target: bytes) -> bytes:
    """An answer the server sends itself instead of the app (a request it cannot parse, a head too large), in
    the body and media type the path's API answers errors in: a TAXII error resource on TAXII paths."""
    path = target.split(b"?", 1)[0].decode("latin-1")
    if path.startswith("/") and is_taxii_path(path):
        body = orjson.dumps(
            {"title": status.phrase.capitalize(), "description": description, "http_status": str(status.value)}
        )
        media = TAXII_MEDIA_TYPE
    else:
        body = orjson.dumps({"error": status.phrase.capitalize(), "detail": description})
        media = "application/json"
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: {media}\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + body


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_head_bytes: int
    # What is read and thrown away of a body the app answered without reading (a 413): past it, close.
    max_discard_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> "EdgeLimits":
        return cls(
            settings.header_timeout_seconds,
            settings.body_timeout_seconds,
            settings.max_connections,
            settings.max_header_bytes,
            settings.max_content_length,
        )


@lru_cache(maxsize=1)
def _limits() -> EdgeLimits:
    # Workers are separate processes that import this module afresh: the IX_* environment is the channel.
    return EdgeLimits.of(get_settings())


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head timeout, a body-idle timeout and a connection cap.

    - head: from the connection's first moment (or the end of the previous response) the complete request
      head must arrive within ``IX_HEADER_TIMEOUT_SECONDS``, however slowly it trickles in;
    - body: between two chunks of a body at most ``IX_BODY_TIMEOUT_SECONDS`` (not while the app has paused
      reading); the app then sees a disconnect;
    - a request head (request line and headers) larger than ``IX_MAX_HEADER_BYTES`` is answered 431 and the
      connection closed (httptools itself would buffer a header of any length);
    - at ``IX_MAX_CONNECTIONS`` a new connection closes the oldest connection with no request in progress,
      or, when every one is busy, is answered 503 and closed at once (no parsing, no app).
    """

    limits: EdgeLimits | None = None  # tests set it; otherwise from the environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.limits or _limits()
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        # From a complete head to the end of the response and of the request body, whichever is later: an app
        # may answer before it has read the body (413, 405), and the rest of that body is no next head.
        self._in_request = False
        self._body_done = True
        self._response_done = True
        self._discarded = 0
        self._head_bytes = 0
        self._tail = b""
        self._waiting: deque[GuardedProtocol] = self.server_state.__dict__.setdefault("ix_waiting", deque())

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limits.max_connections and not self._evict_idle():
            metrics.CONNECTIONS_REFUSED.inc()
            transport.write(_REFUSED)
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def _evict_idle(self) -> bool:
        while self._waiting:
            oldest = self._waiting.popleft()
            if oldest in self.connections and not oldest._in_request and not oldest.transport.is_closing():
                oldest.transport.close()
                return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self.transport is None:  # refused in connection_made: uvicorn never saw it
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._body_timer is not None:
            self._arm_body_timer()
        if self._response_done and not self._body_done:
            self._discarded += len(data)
            if self._discarded > self._limits.max_discard_bytes:  # answered already: no endless sink
                self.transport.close()
                return
        if not self._in_request:
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_head_bytes and not self._head_fits(data):
                metrics.CONNECTIONS_CLOSED.labels("head-too-large").inc()
                self.transport.write(
                    _edge_answer(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        "the request head is too large",
                        self._target(data),
                    )
                )
                self.transport.close()
                return
            self._tail = data[-3:]
        super().data_received(data)

    def _target(self, data: bytes) -> bytes:
        """The request target as far as known: read from ``data`` when the head began in it (httptools has not
        seen it yet), else what httptools parsed of it."""
        if self._head_bytes == len(data):
            parts = data.split(b"\r\n", 1)[0].split(b" ")
            return parts[1] if len(parts) > 1 else b""
        return getattr(self, "url", b"")

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers a request httptools cannot parse (a control character in a header, a bad chunk) in
        # plain text; TAXII clients are owed a TAXII error resource.
        self.transport.write(_edge_answer(HTTPStatus.BAD_REQUEST, msg, getattr(self, "url", b"")))
        self.transport.close()

    def _head_fits(self, data: bytes) -> bool:
        """The bytes counted may hold the end of the head and a body: the head ends within the limit if its
        blank line does (which may have begun in the previous chunk, kept in ``_tail``)."""
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        before = self._head_bytes - len(data) - len(self._tail)
        return end >= 0 and before + end + 4 <= self._limits.max_head_bytes

    def on_headers_complete(self) -> None:
        self._in_request = True
        self._body_done = self._response_done = False
        self._discarded = 0
        self._head_bytes, self._tail = 0, b""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        self._arm_body_timer()

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()
        self._body_done = True
        if self._response_done:
            self._request_over()

    def on_response_complete(self) -> None:
        self._response_done = True
        super().on_response_complete()
        if self._body_done:
            self._request_over()

    def _request_over(self) -> None:
        self._in_request = False
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_timed_out)
        self._waiting.append(self)
        if len(self._waiting) > 2 * self._limits.max_connections:  # drop entries of closed connections
            alive = [p for p in self._waiting if p in self.connections]
            self._waiting.clear()  # in place: every connection of this server holds this deque
            self._waiting.extend(alive)

    def _arm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(self._limits.body_timeout, self._body_timed_out)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_request and not self.transport.is_closing():
            metrics.CONNECTIONS_CLOSED.labels("head-timeout").inc()
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.flow is not None and self.flow.read_paused:  # the app is not reading: not the client's fault
            self._arm_body_timer()
            return
        metrics.CONNECTIONS_CLOSED.labels("body-timeout").inc()
        self.transport.close()


class QueryRedactor(logging.Filter):
    """The access log keeps query parameters the audit trail records; any other value is ``[redacted]`` (a
    client may put its key in a URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            path, _, query = args[2].partition("?")
            pairs = [
                (name, value if name in RECORDED_PARAMETERS or name.startswith("match[") else "[redacted]")
                for name, value in parse_qsl(query, keep_blank_values=True)
            ]
            record.args = (*args[:2], f"{path}?{urlencode(pairs, safe='[]:,')}", *args[3:])
        return True


def log_config(log_format: str = "text") -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": "indicator_exchange.serving.QueryRedactor"}
    config["handlers"]["access"]["filters"] = ["redact_query"]
    return json_log_config(config) if log_format == "json" else config


def check_tls(cert: str, key: str) -> None:
    """Load the certificate and key as uvicorn will, so a bad file is one line, not a worker's traceback."""
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise StartupRefused(f"{option} {path}: no such file")
        if not os.access(path, os.R_OK):
            raise StartupRefused(f"{option} {path}: not readable")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise StartupRefused(f"cannot use --tls-cert {cert} with --tls-key {key}: {exc}") from None


def check_connection_budget(settings: Settings, workers: int) -> str | None:
    """Refuse when ``workers`` x IX_DB_CONNECTIONS_PER_WORKER exceeds what PostgreSQL lets ordinary roles open;
    a warning (returned) when it fits the server but not beside the connections open now."""
    if is_sqlite(settings.database_url):
        return None
    try:
        maximum, reserved, in_use = connection_allowance(settings.session_database_url)
    except Exception as exc:
        raise StartupRefused(f"cannot read max_connections from the database: {str(exc).splitlines()[0]}") from None
    per_worker = settings.connections_per_worker
    if settings.database_pooled:
        # The pooler multiplexes the pools onto its own server connections (its pool size is its budget); only
        # the event loop's connection and the LISTEN connection of each worker go to the server itself.
        per_worker = PoolBudget.of(per_worker).direct
    needed = workers * per_worker
    allowed = maximum - reserved
    if needed > allowed:
        raise StartupRefused(
            f"{workers} workers x {per_worker} connections (IX_DB_CONNECTIONS_PER_WORKER) = {needed}, but the "
            f"database allows {allowed} (max_connections {maximum} - {reserved} reserved); lower one of them or "
            "raise max_connections"
        )
    if needed + in_use > allowed:
        return (
            f"warning: {needed} connections for {workers} workers and {in_use} already open exceed the "
            f"{allowed} the database allows; requests may get 503 when every connection is in use"
        )
    return None


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    tls_cert: str | None,
    tls_key: str | None,
    log_level: str,
) -> None:
    """Start uvicorn with the limits of ``settings`` (after the checks above have passed)."""
    if workers > 1 and not os.environ.get(metrics.MULTIPROCESS_ENV):
        # Before any worker imports prometheus_client: every worker then writes its figures where each scrape
        # can sum them.
        os.environ[metrics.MULTIPROCESS_ENV] = tempfile.mkdtemp(prefix="ix-metrics-")
    uvicorn.run(
        "indicator_exchange.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level=log_level,
        log_config=log_config(settings.log_format),
        http="indicator_exchange.serving:GuardedProtocol",
        # Forwarded headers are believed from IX_TRUSTED_PROXIES only (indicator_exchange.forwarding).
        proxy_headers=False,
        backlog=settings.listen_backlog,
        timeout_keep_alive=settings.keep_alive_seconds,
        server_header=False,
        # uvicorn restarts a worker that has not answered its supervisor within this many seconds of starting;
        # its default (5) killed workers over and over on a loaded host before they had finished importing.
        timeout_worker_healthcheck=WORKER_STARTUP_SECONDS,
    )
