"""The TAXII read routes and the query filters each accepts: one table below ``taxii/`` (which serves them)
and ``audit/`` (which replays their filters to answer "who received this object"), so neither imports the other.

``parse_filter`` turns a read's query parameters into a ``store.read_filter.ReadFilter``; the ``next`` token is
``taxii.filters``' business (only the TAXII routes issue and check it).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from indicator_exchange.errors import BadRequest
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store.read_filter import ReadFilter

ALL_MATCHES = frozenset({"id", "type", "version", "spec_version"})
OBJECT_MATCHES = frozenset({"version", "spec_version"})
VERSION_MATCHES = frozenset({"spec_version"})


@dataclass(frozen=True, slots=True)
class ReadRoute:
    """One TAXII read: its path template, what it serves, and the ``match[...]`` filters it honours."""

    path: str
    kind: str  # "objects" (content served), "manifest" or "versions" (metadata served)
    allow: frozenset[str]
    object_scoped: bool = False  # the object's id is in the path
    all_versions: bool = False  # every version of the object, whatever match[version] says


OBJECTS = ReadRoute("/{api_root}/collections/{collection_id}/objects/", "objects", ALL_MATCHES)
OBJECT = ReadRoute(
    "/{api_root}/collections/{collection_id}/objects/{object_id}/", "objects", OBJECT_MATCHES, object_scoped=True
)
MANIFEST = ReadRoute("/{api_root}/collections/{collection_id}/manifest/", "manifest", ALL_MATCHES)
VERSIONS = ReadRoute(
    "/{api_root}/collections/{collection_id}/objects/{object_id}/versions/",
    "versions",
    VERSION_MATCHES,
    object_scoped=True,
    all_versions=True,
)
# A live stream's batch (live.stream): every version after the position, audited one row per batch.
STREAM = ReadRoute("/api/v1/collections/{collection_id}/stream", "objects", frozenset(), all_versions=True)
READ_ROUTES: Mapping[str, ReadRoute] = {route.path: route for route in (OBJECTS, OBJECT, MANIFEST, VERSIONS, STREAM)}

_TYPE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
# The largest `limit` read as a number; the spec lets a server clamp large page sizes, not parse any length.
_MAX_LIMIT_DIGITS = 19


def _limit(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_LIMIT_DIGITS or int(text) < 1:
        raise BadRequest("limit must be a positive integer (of at most 19 digits)")
    return int(text)


def _values(params: Mapping[str, list[str]], name: str) -> list[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    values = [v.strip() for item in raw for v in item.split(",")]
    if not values or any(not v for v in values):
        raise BadRequest(f"{name} must be a comma-separated list of non-empty values")
    return values


def parse_timestamp(value: str, name: str) -> int:
    """A filter's timestamp in µs; ``BadRequest`` when it is not one."""
    try:
        return parse_timestamp_us(value, name=name)
    except InvalidObject as exc:
        raise BadRequest(str(exc)) from None


def parse_filter(
    params: Mapping[str, list[str]], *, allow: frozenset[str], default_limit: int, max_limit: int
) -> ReadFilter:
    """The filters and page size of one read (``BadRequest`` when malformed); parameters not in ``allow``,
    and unknown ones, are ignored."""
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
            exact.append(parse_timestamp(value, "match[version]"))
    added_after = None
    if "added_after" in params:
        added_after = parse_timestamp(params["added_after"][-1], "added_after")
    limit = min(_limit(params["limit"][-1]) if "limit" in params else default_limit, max_limit)
    return ReadFilter(
        ids=ids,
        types=types,
        spec_versions=spec_versions,
        version_keywords=tuple(keywords),
        version_values=tuple(exact),
        added_after=added_after,
        limit=limit,
    )
