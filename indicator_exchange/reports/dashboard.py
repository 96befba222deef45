"""The compliance dashboard at ``/ui/``: server-rendered HTML, no JavaScript.

Sign-in takes an API key of a compliance or admin principal and keeps it in an HttpOnly, SameSite=Strict
cookie scoped to ``/ui`` (never in a URL); every page re-authenticates it, so a revoked key is out at once.
The dashboard only reads; the two state changes (sign in, sign out) are POSTs, which SameSite=Strict and an
Origin check keep same-site.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from indicator_exchange.audit.context import record_of
from indicator_exchange.auth.keys import bearer_token
from indicator_exchange.auth.service import Caller, InvalidKey, authenticate
from indicator_exchange.dependencies import (
    BodyDep,
    SessionDep,
    SettingsDep,
    attempt_of,
    clock_of,
    note_failed_authentication,
    refuse_if_throttled,
)
from indicator_exchange.errors import ExchangeError, RateLimited, Unauthorized
from indicator_exchange.fields import NulFree
from indicator_exchange.reports import render
from indicator_exchange.reports.routes import COMPLIANCE_KINDS, export_response, report_for, report_response
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store import catalog
from indicator_exchange.store import objects as store

COOKIE = "ix_ui_key"
COOKIE_PATH = "/ui"
COOKIE_MAX_AGE = 8 * 3600
DASHBOARD_DAYS = 30
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make browsers send "Origin: null" on our own POSTs
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


def _page(template: str, status_code: int = 200, **context: object) -> HTMLResponse:
    html = render.environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=_SECURITY_HEADERS)


def _cookie_caller(request: Request, session: Session) -> Caller | None:
    """The signed-in compliance or admin caller, or ``None`` (no cookie, a dead key, the wrong kind)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        caller = authenticate(session, f"Bearer {token}")
    except Unauthorized as exc:
        record_of(request).auth_failure = exc  # the audit trail records whose key failed, and why
        return None
    record_of(request).caller = caller
    return caller if caller.kind in COMPLIANCE_KINDS else None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    # The host the browser sent (``forwarding`` may have pinned the one URLs are built from).
    sent: bytes | None = request.scope.get("ix_sent_host")
    host = sent.decode("latin-1") if sent is not None else request.url.netloc
    return origin is None or urlsplit(origin).netloc in (host, request.url.netloc)


@router.get("", include_in_schema=False)
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/login", response_class=HTMLResponse)
def login_form() -> HTMLResponse:
    """The sign-in form."""
    return _page("login.html", error=None)


@router.post("/login")
def login(request: Request, session: SessionDep, body: BodyDep) -> Response:
    """Check the key and keep it in the session cookie; back to the form with an error otherwise."""
    if not _same_origin(request):
        return _page("login.html", status_code=403, error="Sign-in must come from this site's own form.")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    key_id = (fields.get("key_id") or [""])[0].strip()
    secret = (fields.get("secret") or [""])[0].strip()
    if not secret and "." in key_id:  # a pasted bearer token "<key id>.<secret>"
        key_id, _, secret = key_id.partition(".")
    if not key_id or not secret:
        return _page("login.html", status_code=400, error="Enter the key id and its secret.")
    attempt, now = attempt_of(request, key_id), clock_of(request)
    try:
        refuse_if_throttled(request, attempt, now)
    except RateLimited as refused:
        wait = refused.headers["Retry-After"]
        page = _page("login.html", status_code=429, error=f"Too many failed sign-ins; try again in {wait} s.")
        page.headers["Retry-After"] = wait
        return page
    try:
        caller = authenticate(session, f"Bearer {bearer_token(key_id, secret)}", now=now)
    except Unauthorized as exc:
        record_of(request).auth_failure = exc
        if isinstance(exc, InvalidKey):
            session.rollback()  # it only read; on SQLite its write lock would block the count
            note_failed_authentication(request, attempt, now)
        return _page("login.html", status_code=401, error="That API key is not valid.")
    record_of(request).caller = caller
    if caller.kind not in COMPLIANCE_KINDS:
        return _page("login.html", status_code=403, error="The dashboard is for compliance and admin principals only.")
    response = RedirectResponse("/ui/", status_code=303, headers=_SECURITY_HEADERS)
    response.set_cookie(
        COOKIE,
        bearer_token(key_id, secret),
        max_age=COOKIE_MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Forget the key."""
    response = RedirectResponse("/ui/login", status_code=303, headers=_SECURITY_HEADERS)
    if _same_origin(request):
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Collections with counts, recent sharing per partner, charts of the last 30 days, report downloads."""
    caller = _cookie_caller(request, session)
    if caller is None:
        return RedirectResponse("/ui/login", status_code=303, headers=_SECURITY_HEADERS)
    today = datetime.now(UTC).date()
    start = today - timedelta(days=DASHBOARD_DAYS - 1)
    report = report_for(
        session, caller, settings, start=start.isoformat(), end=today.isoformat(), collections=[], partner=None
    )
    roots = {root.id: root.name for root in catalog.list_api_roots(session)}
    collections = [
        {
            "id": str(c.id),
            "title": c.title,
            "alias": c.alias,
            "api_root": roots.get(c.api_root_id, ""),
            "default_tlp": Tlp(c.default_tlp).label,
            "objects": store.count_objects(
                session, c.id, store.Visibility(clearance=caller.clearance, default_tlp=c.default_tlp)
            ),
            "can_export": caller.access(c.id).can_read,
        }
        for c in catalog.list_collections(session)
    ]
    recent = sorted(report.shared.rows, key=lambda r: r.last_access or datetime.min.replace(tzinfo=UTC), reverse=True)
    return _page(
        "dashboard.html",
        report=report,
        caller=caller,
        clearance=Tlp(caller.clearance).label.upper(),
        collections=collections,
        recent=recent,
        charts=render.chart_markup(report),
        start=start.isoformat(),
        end=today.isoformat(),
        formats=render.FORMATS,
    )


@router.get("/reports/sharing")
def download_report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    start: Annotated[NulFree, Query(alias="from")],
    end: Annotated[NulFree, Query(alias="to")],
    format: NulFree = "html",
    partner: NulFree | None = None,
    collection: Annotated[list[NulFree] | None, Query()] = None,
) -> Response:
    """The sharing report, for the signed-in principal (same as ``/api/v1/reports/sharing``)."""
    caller = _cookie_caller(request, session)
    if caller is None:
        return RedirectResponse("/ui/login", status_code=303, headers=_SECURITY_HEADERS)
    try:
        report = report_for(
            session, caller, settings, start=start, end=end, collections=collection or [], partner=partner or None
        )
        return report_response(report, format, inline=("html",))  # the dashboard's buttons download
    except (ExchangeError, ValueError) as exc:
        message = exc.message if isinstance(exc, ExchangeError) else str(exc)
        status = exc.status_code if isinstance(exc, ExchangeError) else 400
        return _page("error.html", status_code=status, message=message)


@router.get("/export")
def download_export(
    request: Request,
    session: SessionDep,
    collection: NulFree,
    format: NulFree = "stix",
    since: NulFree | None = None,
    type: Annotated[list[NulFree] | None, Query()] = None,
) -> Response:
    """A collection export, for the signed-in principal (same as ``/api/v1/export``)."""
    caller = _cookie_caller(request, session)
    if caller is None:
        return RedirectResponse("/ui/login", status_code=303, headers=_SECURITY_HEADERS)
    try:
        return export_response(
            request, session, caller, collection=collection, fmt=format, since=since, types=type, all_versions=False
        )
    except ExchangeError as exc:
        return _page("error.html", status_code=exc.status_code, message=exc.message)
