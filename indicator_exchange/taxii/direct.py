"""Direct dispatch of the hottest request, a feed poll (``GET /{api_root}/collections/{id}/objects/``): a thin
caller of the route itself.

A poll of a 1,000-object page is one short statement in the database; FastAPI's route matching (every fixed
route is tried first) and dependency solving cost about as much CPU. This ASGI middleware recognises the poll
and calls the route's own dependencies and endpoint (``taxii.routes.get_objects``, which serves it through
``taxii.poll.serve_poll``), with errors rendered by the app's exception handlers through Starlette's
``ExceptionMiddleware``. Nothing is served differently: ``tests/taxii/test_direct.py`` holds the route's
dependencies to the ones called here, and the whole TAXII suite runs through it. It sits inside the audit
middleware, so every poll is still audited with the route and its path parameters.
"""

import re

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from indicator_exchange.dependencies import get_provisional_caller
from indicator_exchange.read_routes import OBJECTS
from indicator_exchange.services import services_of
from indicator_exchange.taxii import routes
from indicator_exchange.taxii.paths import is_taxii_path

# Starlette's default path convertor is ``[^/]+``; the path in the scope is already percent-decoded.
_OBJECTS = re.compile(r"/([^/]+)/collections/([^/]+)/objects/")
OBJECTS_ROUTE = next(
    route
    for route in routes.router.routes
    if isinstance(route, APIRoute) and route.path == OBJECTS.path and "GET" in (route.methods or ())
)


class DirectPolls:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._handled: ExceptionMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _OBJECTS.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if match is None or not is_taxii_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        scope["route"] = OBJECTS_ROUTE
        scope["path_params"] = {"api_root": match[1], "collection_id": match[2]}
        if self._handled is None:  # the app's handlers are all installed once it serves
            app: FastAPI = scope["app"]
            self._handled = ExceptionMiddleware(_poll, handlers=app.exception_handlers)
        await self._handled(scope, receive, send)


async def _poll(scope: Scope, receive: Receive, send: Send) -> None:
    """What FastAPI would run for the route: its dependencies in order, then the endpoint."""
    request = Request(scope, receive)
    params = scope["path_params"]
    await routes.negotiate(request)
    caller = await get_provisional_caller(request, None, None)
    settings = services_of(scope["app"]).settings
    response = await routes.get_objects(request, params["api_root"], params["collection_id"], caller, settings)
    await response(scope, receive, send)
