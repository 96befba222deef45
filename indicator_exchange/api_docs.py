"""The interactive API documentation (`/docs`), served with no request leaving the server.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a machine without internet access `/docs` is a
blank page. The assets come from the `fastapi-offline` package (pinned, so they change only when we bump it)
and are served from ``STATIC_URL``; the page is FastAPI's own HTML pointed at them. ReDoc is not offered: its
bundle loads its sidebar logo from the vendor's CDN unconditionally, so it cannot keep every request local.
"""

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# Under `/static`: neither audited nor answered with TAXII error resources (see audit.middleware, error_handlers).
STATIC_URL = "/static/docs"
ASSETS = Path(str(files("fastapi_offline") / "static"))
# Swagger UI would otherwise send the schema's URL to its public validator (validator.swagger.io) and show
# the badge it returns; a server without internet access must not depend on it, and the URL is not its business.
SWAGGER_UI_PARAMETERS: dict[str, object] = {"validatorUrl": None}


def install_api_docs(app: FastAPI) -> None:
    """Mount the documentation assets and route `/docs` (Swagger UI) to the local copies (the document itself,
    every `$ref` resolved, is ``indicator_exchange.openapi``'s)."""
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
