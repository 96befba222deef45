"""Query parameters of TAXII reads (TAXII 2.1 §3.4): parsed strictly, refused with 400 when malformed."""

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

from indicator_exchange.errors import BadRequest
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store.objects import ReadFilter

_CURSOR_PREFIX = "ix1:"
_TYPE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class PageRequest:
    filters: ReadFilter
    limit: int
    after: int | None  # the stricter of added_after and the cursor position


def encode_cursor(date_added: int) -> str:
    """An opaque, stateless ``next`` token: the position after which the next page starts."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{date_added}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(f"'next' value {token!r} is not a token this server issued") from None
    if not text.startswith(_CURSOR_PREFIX) or not (text.isascii() and text[len(_CURSOR_PREFIX) :].isdigit()):
        raise BadRequest(f"'next' value {token!r} is not a token this server issued")
    return int(text[len(_CURSOR_PREFIX) :])


def _values(params: Mapping[str, list[str]], name: str) -> list[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    values = [v.strip() for item in raw for v in item.split(",")]
    if not values or any(not v for v in values):
        raise BadRequest(f"{name} must be a comma-separated list of non-empty values")
    return values


def _timestamp(value: str, name: str) -> int:
    try:
        return parse_timestamp_us(value, name=name)
    except InvalidObject as exc:
        raise BadRequest(str(exc)) from None


def parse_page_request(
    params: Mapping[str, list[str]],
    *,
    default_limit: int,
    max_limit: int,
    allow: frozenset[str] = frozenset({"id", "type", "version", "spec_version"}),
) -> PageRequest:
    """The filters, page size and start position of one read; unknown parameters are ignored."""
    ids = _values(params, "match[id]") if "id" in allow else None
    types = _values(params, "match[type]") if "type" in allow else None
    if types is not None and any(not _TYPE.match(t) for t in types):
        raise BadRequest("match[type] must list STIX type names")
    spec_versions = _values(params, "match[spec_version]") if "spec_version" in allow else None
    keywords: list[str] = []
    exact: list[int] = []
    versions = _values(params, "match[version]") if "version" in allow else None
    for value in versions or ["last"]:
        if value in ("first", "last", "all"):
            keywords.append(value)
        else:
            exact.append(_timestamp(value, "match[version]"))
    added_after = None
    if "added_after" in params:
        added_after = _timestamp(params["added_after"][-1], "added_after")
    limit = default_limit
    if "limit" in params:
        text = params["limit"][-1].strip()
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise BadRequest("limit must be a positive integer")
        limit = int(text)
    limit = min(limit, max_limit)
    after = added_after
    if "next" in params:
        position = decode_cursor(params["next"][-1])
        after = position if after is None else max(after, position)
    filters = ReadFilter(
        ids=ids,
        types=types,
        spec_versions=spec_versions,
        version_keywords=tuple(keywords),
        version_values=tuple(exact),
        added_after=added_after,
    )
    return PageRequest(filters=filters, limit=limit, after=after)
