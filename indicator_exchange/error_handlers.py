"""The one place errors become responses: TAXII error resources on TAXII paths, JSON elsewhere."""

import logging

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from indicator_exchange import metrics
from indicator_exchange.audit.context import note_denied
from indicator_exchange.auth.keys import parse_authorization
from indicator_exchange.errors import ExchangeError, Hidden, Unavailable
from indicator_exchange.store.engine import database_unavailable
from indicator_exchange.taxii.media import TAXII_MEDIA_TYPE
from indicator_exchange.taxii.paths import is_taxii_path

log = logging.getLogger(__name__)

# How long a client should wait before retrying while the database is away (a restart takes seconds).
DATABASE_RETRY_AFTER_SECONDS = 1


def error_response(
    request: Request,
    status: int,
    title: str,
    description: str,
    headers: dict[str, str] | None = None,
    details: dict[str, object] | None = None,
) -> Response:
    description = _without_secret(request, description)
    if is_taxii_path(request.url.path):
        body: dict[str, object] = {"title": title, "description": description, "http_status": str(status)}
        if details:
            body["details"] = details
        media_type = TAXII_MEDIA_TYPE
    else:
        body = {"error": title, "detail": description}
        if details:
            body["details"] = details
        media_type = "application/json"
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Basic realm="indicator-exchange"')
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=all_headers)


def _without_secret(request: Request, text: str) -> str:
    """Errors echo what the client sent (a path segment, a parameter): never echo its key's secret."""
    credentials = parse_authorization(request.headers.get("authorization"))
    if credentials is not None and len(credentials[1]) >= 8:
        return text.replace(credentials[1], "[redacted]")
    return text


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path. Starlette's own 405 names only the first route whose path
    matched, so ``GET`` and ``POST`` on one path (two routes) gave ``Allow: GET``. Asked of the router itself
    (``matches`` per method), so included routers need no flattening."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


_HTTP_TITLES = {404: "Not found", 405: "Method not allowed", 400: "Bad request"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ExchangeError)
    async def _exchange_error(request: Request, exc: ExchangeError) -> Response:
        if isinstance(exc, Hidden):  # a 404 to the client, a refusal in the audit trail
            note_denied(request, exc.reason)
        return error_response(request, exc.status_code, exc.title, exc.message, exc.headers, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}" for err in exc.errors()
        )
        return error_response(request, 400, "Bad request", problems or "the request is malformed")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = _HTTP_TITLES.get(exc.status_code, "Error")
        description = str(exc.detail) if exc.detail else title
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            description = f"{request.method} is not allowed here; this resource answers {', '.join(allowed)}"
        return error_response(request, exc.status_code, title, description, headers)

    async def _database_error(request: Request, exc: Exception) -> Response:
        if database_unavailable(exc):
            # A restart, failover, refused or dropped connection (the pool is not pinged before use, so the
            # first request after a restart finds out and SQLAlchemy resets the pool). Retryable: a warning,
            # without a traceback.
            metrics.DATABASE_UNAVAILABLE.inc()
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, _first_line(exc))
            unavailable = Unavailable(
                "the database is unavailable; retry the request", retry_after=DATABASE_RETRY_AFTER_SECONDS
            )
            return error_response(request, 503, unavailable.title, unavailable.message, unavailable.headers)
        return await _unexpected(request, exc)

    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(psycopg.Error, _database_error)

    @app.exception_handler(ClientDisconnect)
    async def _disconnected(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up (or its body stalled past IX_BODY_TIMEOUT_SECONDS and the server closed it): not
        # a server error. Nobody reads this answer; the audit row records 408.
        return error_response(request, 408, "Request timeout", "the client closed the connection mid-request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "Internal error", "the server failed; the error is logged")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
