"""One immutable state of the live index (``match.index``): a base layer and the segments compiled since,
and which layer holds each indicator's current form. A match reads one ``Generation`` from start to end."""

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from indicator_exchange.lifecycle.feedback import Tally
from indicator_exchange.match.events import Match, TrafficEvent
from indicator_exchange.match.matcher import CompiledIndicators

GONE = -1  # ``Generation.owner``: the indicator changed since the base and has no current form


@dataclass(frozen=True, slots=True)
class Layer:
    """Indicators compiled together, and the stored object and collection of each one compiled."""

    compiled: CompiledIndicators
    indicators: dict[str, Mapping[str, Any]]
    origin: dict[str, uuid.UUID]
    tallies: dict[str, Tally] = field(default_factory=dict)  # the feedback each compiled indicator was scored with


class _LayeredMapping(Mapping[str, Any]):
    """An id's value from the layer that holds its current form (read-only view for sightings)."""

    def __init__(self, generation: "Generation", pick: Callable[[Layer], Mapping[str, Any]]) -> None:
        self._generation = generation
        self._pick = pick

    def __getitem__(self, key: str) -> Any:
        layer = self._generation.layer_of(key)
        if layer is None:
            raise KeyError(key)
        return self._pick(layer)[key]

    def __iter__(self) -> Iterator[str]:
        generation = self._generation
        for key in generation.base.indicators:
            if key not in generation.owner:
                yield key
        for key, where in generation.owner.items():
            if where != GONE and key in generation.segments[where].indicators:
                yield key

    def __len__(self) -> int:
        return self._generation.indicator_count


@dataclass(frozen=True, slots=True)
class Generation:
    """One immutable state of an index: what a match reads."""

    base: Layer
    segments: tuple[Layer, ...]
    owner: Mapping[str, int]  # ids changed since the base: segment index of the current form, or GONE
    clocks: tuple[tuple[uuid.UUID, int], ...]
    picture: tuple[tuple[int, datetime], ...]  # each collection's default TLP and creation: a change is a full rebuild
    next_due_us: int  # the first moment a validity window opens or closes
    indicator_count: int
    built_at: datetime

    def layer_of(self, indicator_id: str) -> Layer | None:
        where = self.owner.get(indicator_id)
        if where is None:
            return self.base if indicator_id in self.base.indicators else None
        if where == GONE:
            return None
        segment = self.segments[where]
        return segment if indicator_id in segment.indicators else None

    @property
    def indicators(self) -> Mapping[str, Mapping[str, Any]]:
        return _LayeredMapping(self, lambda layer: layer.indicators)

    def tally_of(self, indicator_id: str) -> Tally | None:
        """The feedback an indicator was compiled with (its match ``score``); None: none."""
        layer = self.layer_of(indicator_id)
        return None if layer is None else layer.tallies.get(indicator_id)

    @property
    def origin(self) -> Mapping[str, uuid.UUID]:
        return _LayeredMapping(self, lambda layer: layer.origin)

    @property
    def skipped(self) -> dict[str, str]:
        """Indicators left out for a pattern the matcher cannot read, and why."""
        found = {k: v for k, v in self.base.compiled.skipped.items() if k not in self.owner}
        for key, where in self.owner.items():
            if where != GONE and key in self.segments[where].compiled.skipped:
                found[key] = self.segments[where].compiled.skipped[key]
        return found

    @property
    def overlay_size(self) -> int:
        return sum(len(s.indicators) for s in self.segments)

    def match_indexed(self, events: Iterable[tuple[int, TrafficEvent]]) -> Iterator[Match]:
        """Each event's matches from every layer, each indicator counted only in the layer that holds it."""
        owner, segments = self.owner, self.segments
        base = self.base.compiled
        if not owner:
            yield from base.match_indexed(events)
            return
        for index, event in events:
            view = base.view(event)  # addresses parsed and identifiers hashed once for every layer
            for found in base.match_one(event, index, view):
                if found.indicator_id not in owner:
                    yield found
            for number, segment in enumerate(segments):
                if not segment.compiled.could_match(view):
                    continue
                for found in segment.compiled.match_one(event, index, view):
                    if owner.get(found.indicator_id) == number:
                        yield found
