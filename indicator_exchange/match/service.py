"""Matching traffic against stored indicators: load the active ones a caller may see, compile them, and keep
the compiled index current.

The server keeps one live index per (collections, clearance) (``match.index``), refreshed by deltas read by
``date_added`` position; a one-shot command compiles once (``load_indicator_set``). Either is a cache derived
from the database, so any worker can build its own; nothing here is state another worker would need.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy.orm import Session

from indicator_exchange.auth.service import Caller, require_read
from indicator_exchange.auth.service_caller import service_caller
from indicator_exchange.errors import NotFound
from indicator_exchange.lifecycle import enforcement
from indicator_exchange.match.events import Match, TrafficEvent
from indicator_exchange.match.generation import Generation
from indicator_exchange.match.index import INDEXES, IndexConfig, enforced
from indicator_exchange.match.matcher import CompiledIndicators
from indicator_exchange.settings import Settings
from indicator_exchange.store import catalog
from indicator_exchange.store import indicators as store
from indicator_exchange.store.models import Collection

SIGHTINGS_JOB = "match-sightings"


class Matchable(Protocol):
    """What a match and its sightings read: a one-shot ``IndicatorSet`` or a live index's ``Generation``."""

    @property
    def indicator_count(self) -> int: ...

    @property
    def indicators(self) -> Mapping[str, Mapping[str, Any]]: ...

    @property
    def origin(self) -> Mapping[str, uuid.UUID]: ...

    def match_indexed(self, events: Iterable[tuple[int, TrafficEvent]]) -> Iterator[Match]: ...


@dataclass(frozen=True, slots=True)
class IndicatorSet:
    """The active indicators of some collections, compiled, and where each came from."""

    compiled: CompiledIndicators
    origin: dict[str, uuid.UUID]  # indicator id -> collection id
    indicators: dict[str, dict[str, object]]
    clocks: tuple[tuple[uuid.UUID, int], ...]
    # The lifecycle's verdict (docs/lifecycle.md): live scores, and the active indicators not enforced, and why.
    scores: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def indicator_count(self) -> int:
        return self.compiled.indicator_count

    def match_indexed(self, events: Iterable[tuple[int, TrafficEvent]]) -> Iterator[Match]:
        return self.compiled.match_indexed(events)


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
    now_us = int(now.timestamp()) * 1_000_000 + now.microsecond
    indicators: dict[str, dict[str, object]] = {}
    origin: dict[str, uuid.UUID] = {}
    campaigns: dict[str, set[str]] = defaultdict(set)
    for collection in collections:
        for raw in store.visible_latest(session, collection, clearance):
            obj = orjson.loads(raw)
            if obj.get("type") == "relationship":
                target = str(obj.get("target_ref", ""))
                if obj.get("relationship_type") == "indicates" and target.startswith("campaign--"):
                    campaigns[str(obj.get("source_ref"))].add(target)
            elif obj.get("type") == "indicator" and enforced(obj, now_us):
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
        campaigns={k: sorted(v) for k, v in campaigns.items() if k in indicators},
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
) -> Generation:
    """The live index's current generation for these collections, brought up to date by deltas first."""
    collections: list[Collection] = []
    for collection_id in sorted(set(collection_ids)):
        found = catalog.get_collection_by_id(session, collection_id)
        if found is None:
            raise NotFound(f"there is no collection {collection_id}")
        collections.append(found)
    config = IndexConfig(
        community_key=settings.community_key_bytes,
        key_id=settings.community_key_id,
        min_lsh_bands=min_lsh_bands,
        overlay_limit=settings.match_overlay_limit,
        lifecycle=enforcement.LifecyclePolicy.of(settings),
    )
    index = INDEXES.get([c.id for c in collections], clearance, config, max_indexes=settings.match_indexes)
    return index.current(session, collections, now)


def match_events(
    indicator_set: Matchable,
    events: Iterable[tuple[int, TrafficEvent]],
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> list[Match]:
    """The matches of events given as (input position, event), so ``event_index`` is the input's; each carries
    its indicator's live score with its feedback (a live index's generation: the feedback it was compiled with,
    given ``settings``)."""
    matches = list(indicator_set.match_indexed(events))
    scores = indicator_set.scores if isinstance(indicator_set, IndicatorSet) else {}
    policy = enforcement.LifecyclePolicy.of(settings) if settings is not None and not scores else None
    moment = now or datetime.now(UTC)
    for match in matches:
        if match.indicator_id in scores:
            match.score = scores[match.indicator_id]
        elif policy is not None and match.indicator_id in indicator_set.indicators:
            counted = indicator_set.tally_of(match.indicator_id) if isinstance(indicator_set, Generation) else None
            score = policy.score(indicator_set.indicators[match.indicator_id], moment, counted)
            match.score = round(score.score, 2)
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
    session: Session,
    indicator_set: Matchable,
    matches: Sequence[Match],
    *,
    settings: Settings,
    caller: Caller,
    now: datetime,
) -> dict[str, int]:
    """Store our sightings of matched indicators in the collections the indicators came from.

    Sightings are the service's own objects (``created_by_ref`` = our identity), written through the TAXII write
    path (same validation, same per-object status, same write rules) by a service caller that may write only
    where ``caller`` may; a collection the caller may not write to is skipped and counted.
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
        writer = service_caller(
            job=SIGHTINGS_JOB, identity_ref=settings.identity_id, on_behalf_of=caller, writable=[collection.id]
        )
        status = taxii.add_objects(
            session, root=root, collection=collection, caller=writer, objects=list(items), lifecycle=settings
        )
        posted["sightings"] += status.success_count
        posted["skipped"] += status.failure_count
    return posted
