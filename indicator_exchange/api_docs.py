"""The interactive API documentation (`/docs`), served with no request leaving the server.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a machine without internet access `/docs` is a
blank page. The assets come from the `fastapi-offline` package (pinned, so they change only when we bump it)
and are served from ``STATIC_URL``; the page is FastAPI's own HTML pointed at them. ReDoc is not offered: its
bundle loads its sidebar logo from the vendor's CDN unconditionally, so it cannot keep every request local.
"""

from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter

from indicator_exchange.ingest.schemas import Detection
from indicator_exchange.sync.events import TrafficEvent

# Under `/static`: neither audited nor answered with TAXII error resources (see audit.middleware, error_handlers).
STATIC_URL = "/static/docs"
ASSETS = Path(str(files("fastapi_offline") / "static"))
# Swagger UI would otherwise send the schema's URL to its public validator (validator.swagger.io) and show
# the badge it returns; a server without internet access must not depend on it, and the URL is not its business.
SWAGGER_UI_PARAMETERS: dict[str, object] = {"validatorUrl": None}
# The bodies the ingest and match routes read raw (JSON or NDJSON), named by `$ref` in their `openapi_extra`.
REQUEST_SCHEMAS: dict[str, Any] = {"Detection": Detection, "TrafficEvent": TrafficEvent}


def add_request_schemas(app: FastAPI, schemas: Mapping[str, Any]) -> None:
    """Publish ``schemas`` (name -> model or annotated type) under ``components/schemas`` of ``/openapi.json``.

    Routes that read their body raw (NDJSON or JSON) describe it in ``openapi_extra`` with a ``$ref`` to a
    component FastAPI never generates, since no parameter names the model; a dangling ``$ref`` leaves those
    operations unrendered in ReDoc and shows resolver errors in Swagger UI.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        if all(name in components for name in schemas):  # the document is generated once, then cached
            return document
        for name, annotation in schemas.items():
            schema = TypeAdapter(annotation).json_schema(ref_template="#/components/schemas/{model}")
            for nested, definition in schema.pop("$defs", {}).items():
                components.setdefault(nested, definition)
            components.setdefault(name, {"title": name, **schema})
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_api_docs(app: FastAPI) -> None:
    """Mount the documentation assets, route `/docs` (Swagger UI) to the local copies, and make every `$ref`
    of the document resolve (``add_request_schemas``)."""
    add_request_schemas(app, REQUEST_SCHEMAS)
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", ""))
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} — API documentation",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )
