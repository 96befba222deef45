"""The OpenAPI document, made to tell the truth: every status a route can answer, in the media type it
answers it in.

Why this module: FastAPI documents what it can see — a 200 in ``application/json`` and a 422 for validation —
and this service answers neither on most routes. Validation errors are 400 (``error_handlers``), TAXII
routes answer ``application/taxii+json;version=2.1`` (errors too), and every authenticated route can be
refused (401, 429) or find the database away (503). Routes declare their answers with ``json_responses`` (and
``taxii.openapi.taxii_responses``); ``openapi_document.install_openapi`` removes what FastAPI adds that never
happens and publishes the component schemas the routes' hand-written request bodies refer to. This module
imports nothing of the app, so every package's routes can use it.
"""

from typing import Any

from pydantic import BaseModel

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


def error_responses(codes: tuple[int, ...], media_type: str, model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
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


def json_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of a JSON route: ``{"error", "detail"}``."""
    return error_responses((*COMMON, *codes), JSON, ErrorBody)


def content(media_types: dict[str, dict[str, Any]], description: str) -> dict[str, Any]:
    """A success answer in several media types (``{media type: schema}``)."""
    return {"description": description, "content": {kind: {"schema": schema} for kind, schema in media_types.items()}}
