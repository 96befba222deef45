"""Matching traffic against stored indicators: load the active ones a caller may see, compile them once,
and keep the compiled index until a collection changes.

The compiled index is a cache derived from the database and checked against each collection's clock
(``last_date_added``) on every use, so any worker can build its own; nothing here is state another worker
would need.
"""

import dataclasses
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select, true
from sqlalchemy.orm import Session

from indicator_exchange.auth.service import Caller, require_read
from indicator_exchange.errors import NotFound
from indicator_exchange.lifecycle import enforcement
from indicator_exchange.match.events import Match, TrafficEvent
from indicator_exchange.match.matcher import CompiledIndicators
from indicator_exchange.settings import Settings
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store import catalog
from indicator_exchange.store.models import Collection, ObjectVersion


@dataclass(frozen=True, slots=True)
class IndicatorSet:
    """The active indicators of some collections, compiled, and where each came from."""

    compiled: CompiledIndicators
    origin: dict[str, uuid.UUID]  # indicator id -> collection id
    indicators: dict[str, dict[str, object]]
    clocks: tuple[tuple[uuid.UUID, int], ...]
    # The lifecycle's verdict (docs/lifecycle.md): live scores, and the active indicators not enforced, and why.
    scores: dict[str, float] = dataclasses.field(default_factory=dict)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)


_CACHE: dict[tuple[tuple[uuid.UUID, ...], int, int], IndicatorSet] = {}
_CACHE_LOCK = threading.Lock()


def _visible_latest(session: Session, collection: Collection, clearance: int, types: Sequence[str]) -> list[str]:
    level_ok = ObjectVersion.tlp <= clearance
    visible = level_ok if collection.default_tlp > clearance else (ObjectVersion.tlp.is_(None) | level_ok)
    rows = session.execute(
        select(ObjectVersion.raw).where(
            ObjectVersion.collection_id == collection.id,
            ObjectVersion.is_latest == true(),
            ObjectVersion.stix_type.in_(types),
            ObjectVersion.revoked.is_(False),
            visible,
        )
    )
    return [raw for (raw,) in rows]


def _active(indicator: dict[str, object], now_us: int) -> bool:
    try:
        if "valid_from" in indicator and parse_timestamp_us(indicator["valid_from"]) > now_us:
            return False
        if "valid_until" in indicator and parse_timestamp_us(indicator["valid_until"]) <= now_us:
            return False
    except InvalidObject:
        return False
    return indicator.get("revoked") is not True


def load_indicator_set(
    session: Session,
    collections: Sequence[Collection],
    *,
    clearance: int,
    settings: Settings,
    now: datetime,
    min_lsh_bands: int = 2,
) -> IndicatorSet:
    """Compile the active (not revoked, within validity, within clearance) indicators of ``collections``."""
    now_us = int(now.timestamp() * 1_000_000)
    indicators: dict[str, dict[str, object]] = {}
    origin: dict[str, uuid.UUID] = {}
    campaigns: dict[str, list[str]] = defaultdict(list)
    for collection in collections:
        for raw in _visible_latest(session, collection, clearance, ("indicator", "relationship")):
            obj = orjson.loads(raw)
            if obj.get("type") == "relationship":
                target = str(obj.get("target_ref", ""))
                if obj.get("relationship_type") == "indicates" and target.startswith("campaign--"):
                    campaigns[str(obj.get("source_ref"))].append(target)
            elif _active(obj, now_us):
                indicators[obj["id"]] = obj
                origin[obj["id"]] = collection.id
    assessed = enforcement.assess(session, indicators, settings=settings, now=now)
    for skipped in assessed.skipped:
        del indicators[skipped], origin[skipped]
    compiled = CompiledIndicators.build(
        indicators.values(),
        community_key=settings.community_key_bytes,
        key_id=settings.community_key_id,
        now=now,
        campaigns={k: v for k, v in campaigns.items() if k in indicators},
        min_lsh_bands=min_lsh_bands,
    )
    clocks = tuple((c.id, c.last_date_added) for c in collections)
    return IndicatorSet(
        compiled=compiled,
        origin=origin,
        indicators=indicators,
        clocks=clocks,
        scores=assessed.scores,
        skipped=assessed.skipped,
    )


def cached_indicator_set(
    session: Session,
    collection_ids: Iterable[uuid.UUID],
    *,
    clearance: int,
    settings: Settings,
    now: datetime,
    min_lsh_bands: int = 2,
) -> IndicatorSet:
    """``load_indicator_set``, reused while no collection has changed and the hour has not turned.

    Validity windows move with time, so a cached set is also rebuilt at least hourly.
    """
    collections = []
    for collection_id in sorted(set(collection_ids)):
        found = catalog.get_collection_by_id(session, collection_id)
        if found is None:
            raise NotFound(f"there is no collection {collection_id}")
        collections.append(found)
    key = (tuple(c.id for c in collections), clearance, min_lsh_bands)
    clocks = tuple((c.id, c.last_date_added) for c in collections)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    fresh = cached is not None and (now - cached.compiled.built_at).total_seconds() < 3600
    if cached is not None and fresh and cached.clocks == clocks:
        return cached
    built = load_indicator_set(
        session, collections, clearance=clearance, settings=settings, now=now, min_lsh_bands=min_lsh_bands
    )
    with _CACHE_LOCK:
        _CACHE[key] = built
    return built


def match_events(indicator_set: IndicatorSet, events: Iterable[tuple[int, TrafficEvent]]) -> list[Match]:
    """The matches of events given as (input position, event), so ``event_index`` is the input's; each carries
    its indicator's live score."""
    matches = list(indicator_set.compiled.match_indexed(events))
    for match in matches:
        match.score = indicator_set.scores.get(match.indicator_id)
    return matches


def readable_collections(session: Session, caller: Caller, requested: Sequence[str]) -> list[uuid.UUID]:
    """The collections to match against: those named (each needs a read grant) or every readable one."""
    if requested:
        ids = []
        for text in requested:
            collection = catalog.resolve_collection(session, text)
            require_read(caller, collection)
            ids.append(collection.id)
        return ids
    return [c.id for c in catalog.list_collections(session) if caller.access(c.id).can_read]


def record_sightings(
    session: Session, indicator_set: IndicatorSet, matches: Sequence[Match], *, settings: Settings, caller: Caller,
    now: datetime,
) -> dict[str, int]:  # fmt: skip
    """Store our sightings of matched indicators in the collections the indicators came from.

    Sightings go through the TAXII write path (same validation, same per-object status); a collection the
    caller may not write to is skipped and counted.
    """
    from indicator_exchange.ingest.convert import publisher_of
    from indicator_exchange.match.sightings import aggregate, by_origin
    from indicator_exchange.taxii import service as taxii

    sightings = aggregate(matches, indicator_set.indicators, publisher=publisher_of(settings), now=now)
    posted = {"sightings": 0, "skipped": 0}
    for collection_id, items in by_origin(sightings, indicator_set.origin).items():
        collection = catalog.get_collection_by_id(session, collection_id)
        if collection is None or not caller.access(collection.id).can_write:
            posted["skipped"] += len(items)
            continue
        root = catalog.get_api_root_by_id(session, collection.api_root_id)
        assert root is not None
        # The sightings are the service's own objects (created_by_ref = our identity), written on the caller's
        # grant: the caller was checked for write access above.
        service = dataclasses.replace(caller, kind="admin", identity_ref=settings.identity_id, clearance=4)
        status = taxii.add_objects(
            session, root=root, collection=collection, caller=service, objects=list(items), lifecycle=settings
        )
        posted["sightings"] += status.success_count
        posted["skipped"] += status.failure_count
    return posted
