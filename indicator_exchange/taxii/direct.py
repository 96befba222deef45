"""Direct dispatch of the hottest request, a feed poll (``GET /{api_root}/collections/{id}/objects/``).

A poll of a 1,000-object page is one short statement in the database; before this, FastAPI's route matching
(every fixed route is tried first), dependency solving and exception middleware cost more CPU than that
statement. This ASGI middleware recognises the poll and calls the same functions FastAPI would, in the same
order — the router's negotiation, the caller dependency, the endpoint — then renders errors with the app's own
exception handlers. Nothing is served differently: ``tests/taxii/test_direct.py`` holds the route's
dependencies to the ones called here, and the whole TAXII suite runs through it.

It sits inside the audit middleware, so every poll is still audited with the route and its path parameters.
A page read ahead (``taxii.read_ahead``) is checked and answered here on the event loop; anything else goes
to the endpoint in the thread pool, as FastAPI would send it.
"""

import inspect
import re

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from indicator_exchange.dependencies import get_provisional_caller
from indicator_exchange.read_routes import ALL_MATCHES
from indicator_exchange.services import services_of
from indicator_exchange.taxii import routes
from indicator_exchange.taxii.paths import is_taxii_path

# Starlette's default path convertor is ``[^/]+``; the path in the scope is already percent-decoded.
_OBJECTS = re.compile(r"/([^/]+)/collections/([^/]+)/objects/")
OBJECTS_ROUTE = next(
    route for route in routes.router.routes
    if isinstance(route, APIRoute) and route.path == "/{api_root}/collections/{collection_id}/objects/"
    and "GET" in (route.methods or ())
)  # fmt: skip


class DirectPolls:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _OBJECTS.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if match is None or not is_taxii_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        scope["route"] = OBJECTS_ROUTE
        scope["path_params"] = {"api_root": match[1], "collection_id": match[2]}
        request = Request(scope, receive)
        try:
            await routes.negotiate(request)
            caller = await get_provisional_caller(request, None, None)
            response = await routes.read_ahead_response(request, match[1], match[2], caller, services_of(app).settings)
            if response is None:
                response = await run_in_threadpool(
                    routes.read_objects_response, request, match[1], match[2], caller, services_of(app).settings, None,
                    ALL_MATCHES,
                )  # fmt: skip
        except Exception as exc:
            response = await _handled(app, request, exc)
        await response(scope, receive, send)


async def _handled(app: FastAPI, request: Request, exc: Exception) -> Response:
    """What Starlette's exception middleware would answer: the app's handler for the nearest class."""
    for cls in type(exc).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            response = handler(request, exc)
            return await response if inspect.isawaitable(response) else response
    raise exc
