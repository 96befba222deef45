"""The OpenAPI document, made to tell the truth: every status a route can answer, in the media type it
answers it in.

Why this module: FastAPI documents what it can see — a 200 in ``application/json`` and a 422 for validation —
and this service answers neither on most routes. Validation errors are 400 (``error_handlers``), TAXII
routes answer ``application/taxii+json;version=2.1`` (errors too), and every authenticated route can be
refused (401, 429) or find the database away (503). Routes declare their answers with ``taxii_responses`` /
``json_responses``; ``install_openapi`` removes what FastAPI adds that never happens and publishes the
component schemas the routes' hand-written request bodies refer to.
"""

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter

from indicator_exchange.taxii.media import TAXII_MEDIA_TYPE
from indicator_exchange.taxii.resources import TaxiiError

JSON = "application/json"

DESCRIPTIONS = {
    400: "Malformed request: a parameter or body the server cannot read (NUL, out of range, wrong type).",
    401: "No valid API key (see WWW-Authenticate).",
    403: "The key's principal may not do this.",
    404: "No such resource, or none this caller may know of.",
    405: "Method not allowed (see Allow).",
    406: "The Accept header admits no media type this route answers.",
    409: "Already exists.",
    413: "The body, or the number of items in it, is over this server's limit.",
    415: "The body's Content-Type is not one this route reads.",
    422: "The request is well-formed but cannot be processed.",
    429: "Rate limit or daily object quota reached (see Retry-After).",
    503: "The database is unavailable; retry after Retry-After seconds.",
}

# Every authenticated route: a malformed parameter, no key, over a limit, the database away.
COMMON = (400, 401, 429, 503)


class TaxiiResponse(JSONResponse):
    """Documents a route's answers in the TAXII media type (routes build their own ``Response``); a
    ``JSONResponse`` so that FastAPI documents the response model, not a string."""

    media_type = TAXII_MEDIA_TYPE


class ErrorBody(BaseModel):
    """Every error outside TAXII paths."""

    error: str
    detail: str
    details: dict[str, object] | None = None


def _headers(status: int) -> dict[str, object]:
    if status in (429, 503):
        return {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    if status == 401:
        return {"WWW-Authenticate": {"description": "The accepted scheme.", "schema": {"type": "string"}}}
    return {}


def _errors(codes: tuple[int, ...], media_type: str, model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(codes)):
        answer: dict[str, Any] = {"description": DESCRIPTIONS[status], "model": model}
        if media_type != JSON:
            answer["content"] = {media_type: {}}
        headers = _headers(status)
        if headers:
            answer["headers"] = headers
        answers[status] = answer
    return answers


def taxii_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of a TAXII route: TAXII error resources in the TAXII media type."""
    return _errors((*COMMON, 406, *codes), TAXII_MEDIA_TYPE, TaxiiError)


def json_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of a JSON route: ``{"error", "detail"}``."""
    return _errors((*COMMON, *codes), JSON, ErrorBody)


def content(media_types: dict[str, dict[str, Any]], description: str) -> dict[str, Any]:
    """A success answer in several media types (``{media type: schema}``)."""
    return {"description": description, "content": {kind: {"schema": schema} for kind, schema in media_types.items()}}


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
