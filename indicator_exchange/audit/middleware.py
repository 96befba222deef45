"""The ASGI middleware that writes one audit row per request, after the request's own transaction.

It runs outside the request: a request that fails or rolls back is still audited, with the status the client
received. The row is written in its own short transaction (``BEGIN IMMEDIATE`` on SQLite), in the thread
pool, shielded from cancellation so a client that hangs up cannot erase its trace; ``audit.writer`` spools it
while the database is away and folds repeated failed authentications into one row per burst. Secrets never reach it: it
records the key id, never the ``Authorization`` header, only known query parameters, and scrubs the caller's
secret from anything it records in case a client put it in the URL.
"""

import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import anyio
import orjson
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indicator_exchange import metrics
from indicator_exchange.audit.context import CollectionSeen
from indicator_exchange.audit.service import AuditRecord
from indicator_exchange.audit.writer import AuditWriter
from indicator_exchange.auth import limits as rate_limits
from indicator_exchange.auth.keys import KEY_ID_PREFIX, parse_authorization
from indicator_exchange.store.engine import database_unavailable, session_scope

log = logging.getLogger(__name__)

UNAUDITED_PREFIXES = (
    "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json", "/static", "/favicon.ico", "/ui/static", "/metrics",
)  # fmt: skip
_KEY_ID = re.compile(rf"^{re.escape(KEY_ID_PREFIX)}[0-9a-f]{{16}}$")
# Query parameters recorded with their values; any other parameter is recorded by name only.
RECORDED_PARAMETERS = frozenset(
    {
        "added_after", "limit", "next", "principal", "since", "until", "before", "collection", "collection_id",
        "api_root", "object_id", "kind", "format", "start", "end", "partner", "window", "tlp",
    }
)  # fmt: skip
_MAX_VALUE = 512
_MAX_PARAMETERS = 32
_REDACTED = "[redacted]"


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(UNAUDITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        clock: Callable[[], datetime] = getattr(state, "clock", _utc_now)
        started = clock()
        scope.setdefault("state", {})
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
                if not message.get("more_body", False) and _has_quota(scope["state"]) and status_code < 400:
                    charged = await _charge_before_last_byte(state, build_record(scope, status_code, b"", started))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            metrics.REQUESTS.labels(scope.get("method", ""), getattr(route, "path", "(unmatched)"), status_code).inc()
            writer: AuditWriter | None = getattr(state, "audit_writer", None)
            if writer is not None:
                entry = build_record(scope, status_code, bytes(error_body), started)
                if charged:
                    entry.charge_objects = 0
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(writer.write, entry)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _has_quota(request_state: dict[str, object]) -> bool:
    allowance = request_state.get("allowance")
    return allowance is not None and getattr(allowance, "objects_remaining", None) is not None


async def _charge_before_last_byte(state: Any, entry: AuditRecord) -> bool:
    """Charge a key's daily quota before the client has the whole answer: charged with the audit row, after it,
    a client's next request was admitted before the charge landed, so a sequential poll overshot the quota by
    a page (measured over HTTP). Only keys with a quota pay this write before the last byte."""
    sessions: sessionmaker[Session] | None = getattr(state, "bookkeeping_statements", None)
    if sessions is None or not entry.charge_objects or entry.key_id is None:
        return False
    with anyio.CancelScope(shield=True):
        charged: bool = await anyio.to_thread.run_sync(_charge, sessions, entry)
    return charged


def _charge(sessions: sessionmaker[Session], entry: AuditRecord) -> bool:
    try:
        with session_scope(sessions) as session:
            rate_limits.charge_objects(session, key_id=str(entry.key_id), count=entry.charge_objects, now=entry.at)
        return True
    except Exception as exc:  # the audit row's transaction charges it then
        if database_unavailable(exc):
            log.warning("database unavailable: the quota of key %s is charged with its audit row", entry.key_id)
        else:
            log.exception("could not charge the quota of key %s before answering", entry.key_id)
        return False


def build_record(scope: Scope, status_code: int, error_body: bytes, at: datetime) -> AuditRecord:
    """Everything the audit row needs, from the scope and what the routes left on ``request.state``."""
    state: dict[str, object] = scope.get("state", {})
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
        request_id=_text(state.get("request_id"), secret),
    )

    caller = state.get("caller")
    if caller is not None:
        entry.principal_id = _attr(caller, "principal_id")
        entry.principal_name = _attr(caller, "name")
        entry.key_id = _attr(caller, "key_id")
        entry.key_last_used_at = _attr(caller, "key_last_used_at")
        entry.clearance = _attr(caller, "clearance")
    failure = state.get("auth_failure")
    if failure is not None and caller is None:
        entry.principal_id = _attr(failure, "principal_id")
        entry.principal_name = _attr(failure, "principal_name")
        entry.auth_failed = status_code == 401
    if state.get("auth_throttled") and status_code == 429:
        entry.auth_failed = True

    collection = state.get("collection")
    if isinstance(collection, CollectionSeen):
        entry.collection_id = collection.id
        entry.default_tlp = collection.default_tlp
        entry.collection_clock = collection.clock
    else:
        entry.collection_id = _uuid(params.get("collection_id"))

    page = state.get("page")
    status = state.get("status")
    if page is not None:
        entry.object_count = _attr(page, "count")
        entry.date_added_first = _attr(page, "first_added")
        entry.date_added_last = _attr(page, "last_added")
    elif status is not None:
        entry.object_count = _attr(status, "success_count")
        entry.collection_id = entry.collection_id or _attr(status, "collection_id")
    explicit_count = state.get("object_count")
    if isinstance(explicit_count, int):
        entry.object_count = explicit_count
    if status_code < 400 and state.get("allowance") is not None and entry.object_count:
        entry.charge_objects = entry.object_count

    outcome = state.get("audit_outcome")
    entry.outcome = outcome if isinstance(outcome, str) else None
    details = [str(d) for d in (_attr(failure, "reason"), state.get("audit_detail")) if d]
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


def _attr(obj: object, name: str) -> Any:
    """An attribute of something a route left behind, or ``None`` (an expired ORM object raises on access)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


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
