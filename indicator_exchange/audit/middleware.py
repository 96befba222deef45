"""The ASGI middleware that writes one audit row per request, after the request's own transaction.

It runs outside the request: a request that fails or rolls back is still audited, with the status the client
received. The row is written in its own short transaction (``BEGIN IMMEDIATE`` on SQLite), in the thread
pool, shielded from cancellation so a client that hangs up cannot erase its trace; ``audit.writer`` spools it
while the database is away and folds repeated failed authentications into one row per burst. Secrets never reach it: it
records the key id, never the ``Authorization`` header, only known query parameters, and scrubs the caller's
secret from anything it records in case a client put it in the URL.
"""

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Protocol
from urllib.parse import parse_qsl

import anyio
import orjson
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indicator_exchange import metrics
from indicator_exchange.audit.context import RequestRecord, open_record, request_id_in
from indicator_exchange.audit.service import AuditRecord
from indicator_exchange.audit.writer import AuditWriter
from indicator_exchange.auth.keys import KEY_ID_PREFIX, parse_authorization
from indicator_exchange.auth.limits import charge_quota
from indicator_exchange.auth.service import InvalidKey

UNAUDITED_PREFIXES = (
    "/healthz",
    "/readyz",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/static",
    "/favicon.ico",
    "/ui/static",
    "/metrics",
)
_KEY_ID = re.compile(rf"^{re.escape(KEY_ID_PREFIX)}[0-9a-f]{{16}}$")
# Query parameters recorded with their values; any other parameter is recorded by name only.
RECORDED_PARAMETERS = frozenset(
    {
        "added_after",
        "limit",
        "next",
        "principal",
        "since",
        "until",
        "before",
        "collection",
        "collection_id",
        "api_root",
        "object_id",
        "kind",
        "format",
        "start",
        "end",
        "partner",
        "window",
        "tlp",
    }
)
_MAX_VALUE = 512
_MAX_PARAMETERS = 32
_REDACTED = "[redacted]"


class _Sessions(Protocol):
    @property
    def bookkeeping_statements(self) -> sessionmaker[Session]: ...


class AuditServices(Protocol):
    """What the middleware needs of the worker's services (``services.AppServices`` has it; passed in by the
    app, so ``audit/`` does not import the module that holds the app's context)."""

    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def audit_writer(self) -> AuditWriter: ...
    @property
    def sessions(self) -> _Sessions: ...


class AuditMiddleware:
    def __init__(self, app: ASGIApp, *, services: Callable[[], AuditServices]) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(UNAUDITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        app = self.services()
        started = app.clock()
        facts = open_record(scope)
        status_code = 500
        error_body = bytearray()
        charged = False

        async def capture(message: Message) -> None:
            nonlocal status_code, charged
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            elif message["type"] == "http.response.body":
                if status_code >= 400 and len(error_body) < 4096:
                    error_body.extend(message.get("body", b"")[:4096])
                if not message.get("more_body", False) and not charged:
                    charged = await _charge(app, facts, status_code, started)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            metrics.REQUESTS.labels(scope.get("method", ""), getattr(route, "path", "(unmatched)"), status_code).inc()
            if not charged:  # a second chance for a charge that met an outage before the last byte
                await _charge(app, facts, status_code, started)
            entry = build_record(scope, facts, status_code, bytes(error_body), started)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(app.audit_writer.write, entry)


async def _charge(app: AuditServices, facts: RequestRecord, status_code: int, at: datetime) -> bool:
    """Charge a key's daily quota before the client has the whole answer: charged after it, a client's next
    request was admitted before the charge landed, so a sequential poll overshot the quota by a page (measured
    over HTTP). Only keys with a quota pay this write, in its own statement (not the audit row's). ``True``
    when there is nothing (more) to charge."""
    count = objects_to_charge(facts, status_code)
    key_id = None if facts.caller is None else facts.caller.key_id
    if facts.objects_remaining is None or not count or key_id is None:
        return True
    with anyio.CancelScope(shield=True):
        done: bool = await anyio.to_thread.run_sync(
            partial(charge_quota, app.sessions.bookkeeping_statements, key_id=key_id, count=count, now=at)
        )
    return done


def objects_to_charge(facts: RequestRecord, status_code: int) -> int:
    """Objects a successful request served or accepted (what a daily quota counts), less what it charged
    itself (a stream charges each batch as it sends it)."""
    return max(0, (_object_count(facts) or 0) - facts.quota_charged) if status_code < 400 else 0


def _object_count(facts: RequestRecord) -> int | None:
    if facts.object_count is not None:
        return facts.object_count
    if facts.served is not None:
        return facts.served.count
    return facts.accepted


def build_record(scope: Scope, facts: RequestRecord, status_code: int, error_body: bytes, at: datetime) -> AuditRecord:
    """Everything the audit row needs, from the scope and the request's record (``audit.context``)."""
    headers = dict(scope.get("headers") or [])
    credentials = parse_authorization(headers.get(b"authorization", b"").decode("latin-1") or None)
    secret = credentials[1] if credentials else None
    claimed_key = credentials[0] if credentials and _KEY_ID.match(credentials[0]) else None

    route = scope.get("route")
    params: dict[str, object] = scope.get("path_params") or {}
    client = scope.get("client")
    entry = AuditRecord(
        at=at,
        method=str(scope.get("method", "")),
        path=_scrub(str(scope.get("path", "")), secret),
        status_code=status_code,
        route=getattr(route, "path", None),
        client_addr=str(client[0])[:64] if client else None,
        key_id=claimed_key,
        api_root=_text(params.get("api_root"), secret),
        object_id=_text(params.get("object_id"), secret),
        filters=_filters(scope.get("query_string", b""), secret),
        request_id=_text(request_id_in(scope), secret),
    )

    caller = facts.caller
    if caller is not None:
        entry.principal_id = caller.principal_id
        entry.principal_name = caller.name
        entry.key_id = caller.key_id
        entry.key_last_used_at = caller.key_last_used_at
        entry.clearance = caller.clearance
    failure = facts.auth_failure
    reason = failure.reason if isinstance(failure, InvalidKey) else None
    if failure is not None and caller is None:
        if isinstance(failure, InvalidKey):
            entry.principal_id = failure.principal_id
            entry.principal_name = failure.principal_name
        entry.auth_failed = status_code == 401
    if facts.auth_throttled and status_code == 429:
        entry.auth_failed = True

    if facts.collection is not None:
        entry.collection_id = facts.collection.id
        entry.default_tlp = facts.collection.default_tlp
        entry.collection_clock = facts.collection.clock
    else:
        entry.collection_id = _uuid(params.get("collection_id")) or facts.accepted_into
    if facts.served is not None:
        entry.date_added_first = facts.served.first_added
        entry.date_added_last = facts.served.last_added
    entry.object_count = _object_count(facts)

    entry.outcome = facts.outcome
    details = [d for d in (reason, facts.detail) if d]
    if status_code >= 400 and error_body:
        details.append(_error_text(error_body))
    entry.detail = _scrub("; ".join(d for d in details if d), secret) or None
    return entry


def _filters(query_string: bytes, secret: str | None) -> dict[str, list[str]] | None:
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    if not pairs:
        return None
    recorded: dict[str, list[str]] = {}
    for name, value in pairs[:_MAX_PARAMETERS]:
        name = _scrub(name[:64], secret)
        known = name in RECORDED_PARAMETERS or (name.startswith("match[") and name.endswith("]"))
        recorded.setdefault(name, []).append(_scrub(value[:_MAX_VALUE], secret) if known else _REDACTED)
    return recorded


def _scrub(text: str, secret: str | None) -> str:
    # NUL from a hostile path or query would make PostgreSQL refuse the whole audit row.
    text = text.replace("\x00", "\ufffd")
    return text.replace(secret, _REDACTED) if secret and len(secret) >= 8 else text


def _text(value: object, secret: str | None) -> str | None:
    return None if value is None else _scrub(str(value), secret)


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _error_text(body: bytes) -> str:
    """The one-line description of an error response (TAXII error resource or ``{"error", "detail"}``)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    title = parsed.get("title") or parsed.get("error") or ""
    description = parsed.get("description") or parsed.get("detail") or ""
    return f"{title}: {description}" if title and description else str(title or description)
