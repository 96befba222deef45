"""What an operator sees of each request: a request id (answered in ``X-Request-ID``, put on every log line of
the request and in its audit row), the latency histogram and object counters of ``/metrics``, JSON log lines
on request (``IX_LOG_FORMAT=json``), and ``/readyz``.

Secrets never reach a log line: the access log redacts query values (``serving.QueryRedactor``), no line
formats a header, and the JSON formatter writes only the message and the fields named below.
"""

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indicator_exchange import metrics
from indicator_exchange.audit.context import REQUEST_ID_KEY, record_in
from indicator_exchange.services import services, services_of
from indicator_exchange.store import migrate
from indicator_exchange.store.replicas import LSN_HEADER, primary_lsn

REQUEST_ID_HEADER = "X-Request-ID"
# A client's own id is kept if it looks like one (so a partner can quote it); anything else gets ours.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("ix_request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


class RequestObserver:
    """Outermost ASGI middleware: request id, latency and object counts of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _CLIENT_ID.match(offered) else uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = request_id
        token = _request_id.set(request_id)
        started = time.perf_counter()
        status_code = 500
        header = (REQUEST_ID_HEADER.lower().encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
                added = [header]
                if status_code < 400 and scope.get("method") not in _READS:
                    lsn = await _write_position(scope)
                    if lsn is not None:
                        added.append((LSN_HEADER.lower().encode(), lsn.encode()))
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)
            _count(scope, status_code, time.perf_counter() - started)


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _write_position(scope: Scope) -> str | None:
    """With read replicas: the primary's WAL position after a write, for the client to send back in
    ``X-IX-LSN`` on its next reads (read-your-writes). The write has committed by the time the answer starts."""
    try:
        app = services_of(scope["app"])
    except RuntimeError:
        return None
    if app.replicas is None:
        return None

    def read() -> str | None:
        try:
            with app.sessions.writes() as session:
                return primary_lsn(session)
        except Exception:  # the answer goes out without it; the client's next read then uses the primary
            return None

    return await anyio.to_thread.run_sync(read)


def _count(scope: Scope, status_code: int, seconds: float) -> None:
    route = getattr(scope.get("route"), "path", "(unmatched)")
    metrics.REQUEST_SECONDS.labels(scope.get("method", ""), route).observe(seconds)
    facts = record_in(scope)
    if status_code == 429 and not facts.auth_throttled:
        metrics.RATE_LIMITED.inc()
    if status_code >= 400:
        return
    if facts.served is not None:
        metrics.OBJECTS_SERVED.inc(facts.served.count)
    elif facts.accepted:
        metrics.OBJECTS_INGESTED.inc(facts.accepted)


# ------------------------------------------------------------------------------------------------ JSON logs

# LogRecord attributes that are not "extra" fields given by the caller.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            line["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value if isinstance(value, str | int | float | bool) or value is None else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def startup_line(log_format: str, message: str, *, level: int = logging.WARNING) -> str:
    """A line written before logging is configured (the start-up checks), in the format the server's log will
    use: an operator who asked for JSON logs gets only JSON lines."""
    if log_format != "json":
        return message
    text = message.removeprefix("warning: ")
    return JsonFormatter().format(logging.LogRecord("indicator_exchange.serve", level, __file__, 0, text, None, None))


def json_log_config(config: dict[str, Any]) -> dict[str, Any]:
    """uvicorn's logging ``config`` with every handler writing JSON, and the service's own loggers (which
    propagate to the root) given a handler too."""
    config["formatters"] = {"json": {"()": "indicator_exchange.observe.JsonFormatter"}}
    for handler in config["handlers"].values():
        handler["formatter"] = "json"
    config["handlers"]["root"] = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    config["root"] = {"handlers": ["root"], "level": "INFO"}
    return config


# ------------------------------------------------------------------------------------------------ readiness

router = APIRouter(tags=["operations"])


def readiness(request: Request) -> tuple[bool, dict[str, object]]:
    """Whether this worker can serve: the database answers and its schema is at this code's head revision."""
    head = migrate.head_revision()
    engine = services(request).engines.primary
    try:
        found = migrate.current_revision(engine)
    except Exception as exc:
        return False, {"status": "not ready", "database": "unreachable", "reason": str(exc).splitlines()[0][:200]}
    body: dict[str, object] = {"database": "reachable", "schema": found, "expected_schema": head}
    replicas = services(request).replicas
    if replicas is not None:  # informative: a replica out of rotation does not make this instance unready
        body["replicas"] = replicas.describe()
    if found != head:
        return False, {"status": "not ready", **body, "reason": "the schema is not at head: run `db upgrade`"}
    return True, {"status": "ready", **body}


@router.get("/readyz", summary="Readiness", include_in_schema=True)
def readyz(request: Request) -> JSONResponse:
    """Readiness for a load balancer: 200 when the database answers and its schema is at head, else 503 (take
    this instance out of rotation). ``/healthz`` is liveness only."""
    ready, body = readiness(request)
    return JSONResponse(body, status_code=200 if ready else 503)
