"""TAXII 2.1 endpoints (TAXII 2.1 §4 discovery and API roots, §5 collections, objects, manifests)."""

from functools import partial

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from indicator_exchange.audit.context import note_accepted, note_collection, note_objects, note_served, record_of
from indicator_exchange.auth.service import Caller
from indicator_exchange.dependencies import (
    BodyDep,
    CallerDep,
    ProvisionalCallerDep,
    SettingsDep,
    check_objects_allowed,
    confirm_caller,
    objects_remaining,
    objects_written,
)
from indicator_exchange.dependencies import StatementSessionDep as SessionDep  # TAXII reads: no BEGIN/COMMIT
from indicator_exchange.errors import BadRequest
from indicator_exchange.live import longpoll
from indicator_exchange.read_routes import (
    MANIFEST,
    OBJECT,
    OBJECT_MATCHES,
    OBJECTS,
    VERSIONS,
    ReadRoute,
)
from indicator_exchange.services import services
from indicator_exchange.settings import Settings
from indicator_exchange.store import catalog
from indicator_exchange.store.replicas import LSN_HEADER, parse_lsn
from indicator_exchange.taxii import resources, service
from indicator_exchange.taxii.filters import parse_page_request
from indicator_exchange.taxii.media import TAXII_MEDIA_TYPE, check_accept, check_content_type
from indicator_exchange.taxii.openapi import TaxiiResponse, taxii_responses
from indicator_exchange.taxii.poll import PollContext, PollRequest, Served, serve_poll


async def negotiate(request: Request) -> None:
    """Async: no I/O, so it runs on the event loop instead of costing every request a thread-pool hop."""
    check_accept(request.headers.get("accept"))
    # No identifier, timestamp or filter value can hold NUL, and PostgreSQL text cannot: refuse it up front.
    if "\x00" in request.scope["path"] or any("\x00" in k + v for k, v in request.query_params.multi_items()):
        raise BadRequest("the request's path or query contains a NUL character")


router = APIRouter(dependencies=[Depends(negotiate)], tags=["TAXII 2.1"], default_response_class=TaxiiResponse)


def _taxii(body: object, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(body, dict):  # TAXII 2.1 §2: empty lists are prohibited; an empty optional list is omitted
        body = {key: value for key, value in body.items() if value != []}
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(payload, status_code=status_code, media_type=TAXII_MEDIA_TYPE, headers=headers)


def _params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def _query(name: str, description: str, schema: dict[str, object]) -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


# What taxii/filters.py accepts, as JSON Schema: a client (or a fuzzer) can know the rule before it sends.
_TIMESTAMP = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?Z"
_ITEM = r"[^,\s\x00][^,\x00]*"  # a non-empty list item (items are stripped of spaces)
_TYPE_NAME = r"[a-z][a-z0-9-]*[a-z0-9]"
_VERSION_ITEM = f"(first|last|all|{_TIMESTAMP})"


def _list_of(item: str) -> str:
    return f"^{item}(,{item})*$"


_ADDED_AFTER = _query(
    "added_after",
    "Only objects added strictly after this timestamp (UTC, `Z`).",
    {"type": "string", "pattern": f"^{_TIMESTAMP}$", "example": "2026-01-01T00:00:00.000Z"},
)
_LIMIT = _query(
    "limit",
    "Page size (clamped to IX_MAX_PAGE_SIZE).",
    {"type": "integer", "minimum": 1, "maximum": 10**19 - 1, "example": 1000},
)
_NEXT = _query(
    "next",
    "The `next` token of the previous page, with the same filters (a token is bound to them).",
    {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
)
_VERSION = _query(
    "match[version]",
    "first, last (default), all, or timestamps; comma-separated.",
    {"type": "string", "pattern": _list_of(_VERSION_ITEM), "example": "last"},
)
_SPEC = _query(
    "match[spec_version]",
    "STIX spec versions, comma-separated.",
    {"type": "string", "pattern": _list_of(_ITEM), "example": "2.1"},
)
_ID = _query("match[id]", "STIX ids, comma-separated.", {"type": "string", "pattern": _list_of(_ITEM)})
_TYPE = _query(
    "match[type]",
    "STIX types, comma-separated.",
    {"type": "string", "pattern": _list_of(_TYPE_NAME), "example": "indicator"},
)
LIST_DOC = {"parameters": [_ADDED_AFTER, _LIMIT, _NEXT, _ID, _TYPE, _VERSION, _SPEC]}
OBJECT_DOC = {"parameters": [_ADDED_AFTER, _LIMIT, _NEXT, _VERSION, _SPEC]}
VERSIONS_DOC = {"parameters": [_ADDED_AFTER, _LIMIT, _NEXT, _SPEC]}
DELETE_DOC = {"parameters": [_VERSION, _SPEC]}
POST_DOC = {
    "requestBody": {
        "required": True,
        "content": {TAXII_MEDIA_TYPE: {"schema": resources.EnvelopeIn.model_json_schema()}},
    }
}


@router.get("/taxii2/", summary="Server discovery", response_model=resources.Discovery, responses=taxii_responses())
def discovery(request: Request, session: SessionDep, caller: CallerDep, settings: SettingsDep) -> Response:
    """TAXII 2.1 §4.1: the API roots this caller may use."""
    base = str(request.base_url)
    roots = service.visible_roots(session, caller)
    body: dict[str, object] = {"title": settings.api_title, "description": "STIX 2.1 indicator sharing"}
    if settings.contact:
        body["contact"] = settings.contact
    if roots:
        body["default"] = f"{base}{roots[0].name}/"
        body["api_roots"] = [f"{base}{root.name}/" for root in roots]
    return _taxii(body)


@router.get(
    "/{api_root}/",
    summary="API root information",
    response_model=resources.ApiRootResource,
    responses=taxii_responses(403, 404),
)
def api_root(api_root: str, session: SessionDep, caller: CallerDep, settings: SettingsDep) -> Response:
    """TAXII 2.1 §4.2: title, supported versions and the largest accepted body."""
    root = service.resolve_root(session, api_root, caller)
    body: dict[str, object] = {
        "title": root.title,
        "versions": [TAXII_MEDIA_TYPE],
        "max_content_length": settings.max_content_length,
    }
    if root.description:
        body["description"] = root.description
    return _taxii(body)


@router.get(
    "/{api_root}/status/{status_id}/",
    summary="Status of a POST",
    response_model=resources.StatusResource,
    responses=taxii_responses(403, 404),
)
def status(api_root: str, status_id: str, session: SessionDep, caller: CallerDep) -> Response:
    """TAXII 2.1 §4.3: per-object successes, failures and pendings of one POST."""
    root = service.resolve_root(session, api_root, caller)
    found = service.get_status(session, root=root, status_id=status_id, caller=caller)
    return _taxii(service.status_resource(found))


@router.get(
    "/{api_root}/collections/",
    summary="Collections",
    response_model=resources.Collections,
    responses=taxii_responses(403, 404),
)
def collections(api_root: str, session: SessionDep, caller: CallerDep) -> Response:
    """TAXII 2.1 §5.1: the collections this caller has a grant on."""
    root = service.resolve_root(session, api_root, caller)
    visible = [c for c in catalog.list_collections(session, root.id) if caller.sees(c.id)]
    if not visible:
        return _taxii({})
    return _taxii({"collections": [service.collection_resource(c, caller) for c in visible]})


@router.get(
    "/{api_root}/collections/{collection_id}/",
    summary="One collection",
    response_model=resources.CollectionResource,
    responses=taxii_responses(403, 404),
)
def collection(request: Request, api_root: str, collection_id: str, session: SessionDep, caller: CallerDep) -> Response:
    """TAXII 2.1 §5.2."""
    root = service.resolve_root(session, api_root, caller)
    found = service.resolve_collection(session, root, collection_id)
    note_collection(request, found)
    service.authorise(caller, root, collection_id, found)
    return _taxii(service.collection_resource(found, caller))


@router.get(
    MANIFEST.path,
    summary="Object manifest",
    openapi_extra=LIST_DOC,
    response_model=resources.Manifest,
    responses=taxii_responses(403, 404),
)
async def manifest(
    request: Request, api_root: str, collection_id: str, caller: ProvisionalCallerDep, settings: SettingsDep
) -> Response:
    """TAXII 2.1 §5.3: one manifest record per object version, paged by a keyset cursor."""
    return await _serve(request, caller, settings, MANIFEST, api_root, collection_id)


@router.get(
    OBJECTS.path,
    summary="Get objects",
    openapi_extra=LIST_DOC,
    response_model=resources.Envelope,
    responses=taxii_responses(403, 404),
)
async def get_objects(
    request: Request, api_root: str, collection_id: str, caller: ProvisionalCallerDep, settings: SettingsDep
) -> Response:
    """TAXII 2.1 §5.4: an envelope of objects; filters match[id|type|version|spec_version], added_after."""
    return await _serve(request, caller, settings, OBJECTS, api_root, collection_id)


def poll_request(
    request: Request, settings: Settings, route: ReadRoute, api_root: str, collection_id: str, object_id: str | None
) -> PollRequest:
    """The poll a TAXII read asks for. A key with a daily object quota gets pages no larger than what the quota
    has left."""
    remaining = objects_remaining(request)
    return PollRequest(
        route=route,
        api_root=api_root,
        collection_key=collection_id,
        params=_params(request),
        default_limit=settings.default_page_size,
        max_limit=settings.max_page_size if remaining is None else max(1, min(settings.max_page_size, remaining)),
        object_id=object_id,
    )


def poll_context(request: Request, caller: Caller) -> PollContext:
    """Who polls: the caller as the dependency found it, and how to confirm it if the cache proves stale."""
    return PollContext(
        services(request),
        caller,
        record_of(request),
        partial(confirm_caller, request),
        read_position=parse_lsn(request.headers.get(LSN_HEADER)),
    )


async def _serve(
    request: Request,
    caller: Caller,
    settings: Settings,
    route: ReadRoute,
    api_root: str,
    collection_id: str,
    object_id: str | None = None,
) -> Response:
    poll = poll_request(request, settings, route, api_root, collection_id, object_id)
    ctx = poll_context(request, caller)
    served = await serve_poll(ctx, poll)
    waited = None
    if route is OBJECTS:  # Prefer: wait (RFC 7240): an empty answer is held until a commit (live.longpoll)
        served, waited = await longpoll.hold(
            services(request).live_hub,
            request.headers.getlist("prefer"),
            settings.live_max_wait_seconds,
            served,
            partial(_poll_again, ctx, poll),
        )
    page = served.page
    note_collection(request, served.collection, clock=page.clock)
    note_served(request, page.count, page.first_added, page.last_added)
    headers = page.headers if waited is None else {**page.headers, "Preference-Applied": f"wait={waited}"}
    return _taxii(page.body, headers=headers)


async def _poll_again(ctx: PollContext, poll: PollRequest, reauthenticate: bool) -> Served:
    if reauthenticate:  # woken by a change to keys or grants: the caller as it is now
        ctx.caller = await run_in_threadpool(ctx.confirm)
    return await serve_poll(ctx, poll)


@router.post(
    "/{api_root}/collections/{collection_id}/objects/",
    summary="Add objects",
    status_code=202,
    openapi_extra=POST_DOC,
    response_model=resources.StatusResource,
    responses=taxii_responses(403, 404, 413, 415),
)
def add_objects(
    request: Request,
    api_root: str,
    collection_id: str,
    session: SessionDep,
    caller: CallerDep,
    body: BodyDep,
    settings: SettingsDep,
) -> Response:
    """TAXII 2.1 §5.5: store an envelope; answers 202 with a status resource listing each object."""
    check_content_type(request.headers.get("content-type"))
    root = service.resolve_root(session, api_root, caller)
    found = service.resolve_collection(session, root, collection_id)
    note_collection(request, found)
    service.authorise(caller, root, collection_id, found, write=True)
    objects = service.parse_envelope(body, max_objects=settings.max_objects_per_envelope)
    check_objects_allowed(request, len(objects))
    result = service.add_objects(
        session,
        root=root,
        collection=found,
        caller=caller,
        objects=objects,
        max_failures=settings.max_status_failures,
        lifecycle=settings,
    )
    note_accepted(request, result.success_count, found.id)
    objects_written(request)
    return _taxii(service.status_resource(result), status_code=202)


@router.get(
    OBJECT.path,
    summary="Get an object",
    openapi_extra=OBJECT_DOC,
    response_model=resources.Envelope,
    responses=taxii_responses(403, 404),
)
async def get_object(
    request: Request,
    api_root: str,
    collection_id: str,
    object_id: str,
    caller: ProvisionalCallerDep,
    settings: SettingsDep,
) -> Response:
    """TAXII 2.1 §5.6: the versions of one object (default: the latest)."""
    return await _serve(request, caller, settings, OBJECT, api_root, collection_id, object_id)


@router.delete(
    "/{api_root}/collections/{collection_id}/objects/{object_id}/",
    summary="Delete an object",
    openapi_extra=DELETE_DOC,
    responses={200: {"description": "Deleted (an empty body)."}, **taxii_responses(403, 404)},
)
def delete_object(
    request: Request,
    api_root: str,
    collection_id: str,
    object_id: str,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
) -> Response:
    """TAXII 2.1 §5.7: delete an object's versions (all of them unless match[version] narrows it)."""
    root = service.resolve_root(session, api_root, caller)
    found = service.resolve_collection(session, root, collection_id)
    note_collection(request, found)
    service.authorise(caller, root, collection_id, found, read=True, write=True)
    params = _params(request)
    params.setdefault("match[version]", ["all"])
    page = parse_page_request(
        params,
        default_limit=settings.default_page_size,
        max_limit=settings.max_page_size,
        allow=OBJECT_MATCHES,
    )
    note_objects(
        request, service.delete_object(session, collection=found, caller=caller, page=page, object_id=object_id)
    )
    return _taxii(b"", status_code=200)


@router.get(
    VERSIONS.path,
    summary="Object versions",
    openapi_extra=VERSIONS_DOC,
    response_model=resources.Versions,
    responses=taxii_responses(403, 404),
)
async def versions(
    request: Request,
    api_root: str,
    collection_id: str,
    object_id: str,
    caller: ProvisionalCallerDep,
    settings: SettingsDep,
) -> Response:
    """TAXII 2.1 §5.8: the version timestamps of one object."""
    return await _serve(request, caller, settings, VERSIONS, api_root, collection_id, object_id)
