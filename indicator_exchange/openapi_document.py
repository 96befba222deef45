"""The OpenAPI document of the whole app, installed by ``create_app``: what FastAPI generates, less the 422s
it adds that never happen, plus the component schemas the hand-written request bodies refer to.

Apart from ``openapi.py`` (the answers routes declare) because it names the models of several packages: only
the app, at the top of the layers, may import them all.
"""

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from indicator_exchange.openapi import JSON


def _component_schemas() -> dict[str, Any]:
    """Schemas the hand-written request bodies refer to by ``#/components/schemas/<name>``."""
    from indicator_exchange.ingest.schemas import Detection
    from indicator_exchange.match.events import TrafficEvent
    from indicator_exchange.reports.model import SharingReport

    found: dict[str, Any] = {}
    adapters: dict[str, TypeAdapter[Any]] = {
        "Detection": TypeAdapter(Detection),
        "TrafficEvent": TypeAdapter(TrafficEvent),
        "SharingReport": TypeAdapter(SharingReport),
    }
    for name, adapter in adapters.items():
        mode: Literal["validation", "serialization"] = "serialization" if name == "SharingReport" else "validation"
        schema = adapter.json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        found.update(schema.pop("$defs", {}))
        found[name] = schema
    return found


def _drop_validation_422(document: dict[str, Any]) -> None:
    """FastAPI adds a 422 to every route with parameters; ``error_handlers`` answers those with 400."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            schema = responses.get("422", {}).get("content", {}).get(JSON, {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def build_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    _drop_validation_422(document)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _component_schemas().items():
        components.setdefault(name, schema)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve ``build_document`` at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 - FastAPI's documented way to replace the generator
