"""FastAPI dependencies shared by every router: settings, the per-request transaction, the caller."""

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange import metrics
from indicator_exchange.audit.context import record_of
from indicator_exchange.auth import throttle
from indicator_exchange.auth.keys import parse_authorization
from indicator_exchange.auth.limits import admit, limits_for
from indicator_exchange.auth.service import Caller, CallerCache, InvalidKey, authenticate, require_kind
from indicator_exchange.auth.throttle import Attempt
from indicator_exchange.errors import PayloadTooLarge, RateLimited
from indicator_exchange.services import AppServices, services, utc_now
from indicator_exchange.settings import Settings
from indicator_exchange.store import principals
from indicator_exchange.store.engine import session_scope

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_settings_dep(request: Request) -> Settings:
    return services(request).settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back if it raises."""
    sessions = services(request).sessions
    yield from _request_session(request, reads=sessions.reads, writes=sessions.writes)


def get_statement_session(request: Request) -> Iterator[Session]:
    """``get_session`` for routes whose reads are a few short statements (TAXII): reads run without
    BEGIN/COMMIT where the store allows it (``store.engine.read_only_engine``); writes keep their one
    transaction."""
    sessions = services(request).sessions
    yield from _request_session(request, reads=sessions.statements, writes=sessions.writes)


def _request_session(
    request: Request, *, reads: sessionmaker[Session], writes: sessionmaker[Session]
) -> Iterator[Session]:
    session = (reads if request.method in _READ_METHODS else writes)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": the transaction commits before the response is sent, so a 202 always means stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
StatementSessionDep = Annotated[Session, Depends(get_statement_session, scope="function")]


# Declared so OpenAPI documents both schemes (and /docs can "Authorize"); the header is parsed in one place,
# auth.keys.parse_authorization, whatever these return.
_basic_scheme = HTTPBasic(auto_error=False, description="User name: API key id; password: the key's secret.")
_bearer_scheme = HTTPBearer(auto_error=False, description="Token: `<key id>.<secret>`.")


__all__ = ["utc_now"]  # re-exported: tests and older callers take the default clock from here


def clock_of(request: Request) -> datetime:
    """Now, from ``AppServices.clock`` (tests replace it to move time; the default is the system clock)."""
    return services(request).clock()


def get_caller(
    request: Request,
    _basic: Annotated[HTTPBasicCredentials | None, Depends(_basic_scheme)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Caller:
    """The authenticated caller (401 otherwise), counted against its key's rate limits (429 when over).

    Authentication and counting run in their own short transactions before the request's own, so the
    request never holds two connections and SQLite never upgrades a read transaction to a write. The caller
    is kept on the request's record (``audit.context``) for the audit trail.
    """
    caller = confirm_caller(request)
    _admit(request, caller)
    return caller


async def get_provisional_caller(
    request: Request,
    _basic: Annotated[HTTPBasicCredentials | None, Depends(_basic_scheme)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Caller:
    """``get_caller`` for routes whose own statement reads the auth epoch (TAXII polls on PostgreSQL, see
    ``store.pages_pg.read_page_pg``): a cached caller is taken without reading the epoch first, saving a round
    trip, and on the event loop (database work goes to the thread pool). The record's ``auth_epoch`` is the
    epoch it assumes; when the route's statement finds another one and ``caller_provisional`` is set, the
    route must call ``confirm_caller`` and start over.
    """
    app = services(request)
    credentials = parse_authorization(request.headers.get("authorization"))
    hit = None
    if credentials and app.features.one_statement_pages:
        hit = app.callers.get_assuming_epoch(*credentials, now=app.clock())
    if hit is None:
        caller = await run_in_threadpool(confirm_caller, request)
    else:
        caller, epoch = hit
        record = record_of(request)
        record.caller, record.auth_epoch, record.caller_provisional = caller, epoch, True
    if limits_for(caller, app.settings).any:
        await run_in_threadpool(_admit, request, caller)
    return caller


def confirm_caller(request: Request) -> Caller:
    """Authenticate against the current auth epoch (read first), from the cache or the database; the caller
    and the epoch go on the request's record. No rate-limit counting: the dependencies do that once."""
    app = services(request)
    now = app.clock()
    header = request.headers.get("authorization")
    credentials = parse_authorization(header)
    cache: CallerCache = app.callers
    epoch = _auth_epoch(app) if credentials and cache.enabled else None
    caller = cache.get(*credentials, now=now, epoch=epoch) if credentials else None
    if caller is None:
        attempt = attempt_of(request, credentials[0] if credentials else None)
        if credentials:
            refuse_if_throttled(request, attempt, now)
        try:
            with session_scope(app.sessions.statements) as session:
                caller = authenticate(session, header, now=now)
        except InvalidKey as exc:
            record_of(request).auth_failure = exc
            note_failed_authentication(request, attempt, now)
            raise
        if credentials:
            cache.put(*credentials, caller, epoch=epoch)
    record = record_of(request)
    record.caller, record.auth_epoch, record.caller_provisional = caller, epoch, False
    return caller


def attempt_of(request: Request, key_id: str | None) -> Attempt:
    """The key id claimed and the client address (after ``forwarding``), for the failure throttle."""
    return Attempt.of(key_id, request.client.host if request.client else None)


def refuse_if_throttled(request: Request, attempt: Attempt, now: datetime) -> None:
    """``RateLimited`` (429) when the attempt's key id failed too often lately (``IX_AUTH_FAILURES_PER_MINUTE``),
    or its address did and the attempt names no key id, or its address passed the ceiling (``auth.throttle``):
    before the key is looked up."""
    app = services(request)
    limit = app.settings.auth_failures_per_minute
    if not limit:
        return
    with session_scope(app.sessions.bookkeeping_statements) as session:
        refused = throttle.refusal(session, attempt, limit=limit, now=now)
    if refused is not None:
        record_of(request).auth_throttled = True
        metrics.AUTH_THROTTLED.inc()
        raise refused


def note_failed_authentication(request: Request, attempt: Attempt, now: datetime) -> None:
    """Count a failed authentication (metric, and the throttle's counters when it is on)."""
    metrics.AUTH_FAILURES.inc()
    app = services(request)
    if app.settings.auth_failures_per_minute:
        with session_scope(app.sessions.bookkeeping_statements) as session:
            throttle.record_failure(session, attempt, now=now)


def _admit(request: Request, caller: Caller) -> None:
    app = services(request)
    limits = limits_for(caller, app.settings)
    if limits.any:
        with session_scope(app.sessions.bookkeeping_statements) as session:
            allowance = admit(session, caller, limits, now=app.clock())
        record_of(request).allowance = allowance
        if allowance.refusal is not None:
            raise allowance.refusal


def _auth_epoch(app: AppServices) -> int | None:
    """Read before authenticating, so a change racing with a cache fill leaves an entry that is never used."""
    with session_scope(app.sessions.statements) as session:
        return principals.auth_epoch(session)


CallerDep = Annotated[Caller, Depends(get_caller)]
ProvisionalCallerDep = Annotated[Caller, Depends(get_provisional_caller)]


def get_admin(caller: CallerDep) -> Caller:
    """The caller, who must be an admin principal (403 otherwise)."""
    require_kind(caller, "admin")
    return caller


AdminDep = Annotated[Caller, Depends(get_admin)]


def objects_written(request: Request) -> None:
    """Tell the statistics keeper that a request stored objects (``store.statistics``)."""
    services(request).statistics.nudge()


def objects_remaining(request: Request) -> int | None:
    """How many objects the caller's key may still receive or send today (``None``: no quota)."""
    return record_of(request).objects_remaining


def check_objects_allowed(request: Request, count: int) -> None:
    """``RateLimited`` if ``count`` objects would exceed what the key's daily quota has left."""
    remaining = objects_remaining(request)
    if remaining is not None and count > remaining:
        raise RateLimited(
            f"this request carries {count} objects; this key's daily quota has {remaining} left",
            retry_after=_seconds_to_midnight(clock_of(request)),
        )


def _seconds_to_midnight(now: datetime) -> int:
    return max(1, 86_400 - int(now.timestamp()) % 86_400)


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes ``IX_MAX_CONTENT_LENGTH``."""
    limit = services(request).settings.max_content_length
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; this server accepts at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds this server's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


BodyDep = Annotated[bytes, Depends(read_body)]
