"""The matcher's live index: compiled once, then kept current by deltas read by ``date_added`` position.

A ``Generation`` is immutable and what a match reads: a large *base* layer compiled at start, plus small
*segments*, each compiling the indicators that changed since (new, versioned, revoked, expired, deleted —
``owner`` says which layer holds an id's current form, ``-1`` that it has none). A refresh builds the next
generation aside and swaps one reference, so a match never waits for it and never sees half of one. One
refresher at a time per index (a lock, checked again once held): requests that see the same change reuse
the generation its first observer built.

Segments merge geometrically (two neighbours of similar size become one), so a change is recompiled a few
times at most; once the segments hold ``IX_MATCH_OVERLAY_LIMIT`` indicators a new base is compiled in a
background thread from the in-memory state, while matching and refreshing go on against the old one.
A full rebuild from the database happens only at start and when the collections' TLP picture changes (a
default TLP moved); which collections and which clearance an index serves is its key, so another grant
picture is another index.

Time moves validity too: each indicator's next ``valid_from``/``valid_until`` is kept in a heap, and a
generation reaching the first of them is refreshed (without a database read) like any other change.

Partner feedback moves scores without a new version (docs/lifecycle.md#feedback): with a lifecycle policy the
index also follows the feedback rows by id (``FeedbackClock``), at most every ``feedback_poll_seconds`` (on the
first request or refresh after it), and recompiles the indicators whose tally changed.
"""

import heapq
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from indicator_exchange.lifecycle.enforcement import LifecyclePolicy
from indicator_exchange.lifecycle.feedback import Tally, tally
from indicator_exchange.match.feedback_clock import FeedbackClock
from indicator_exchange.match.generation import GONE, Generation, Layer
from indicator_exchange.match.matcher import CompiledIndicators
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store import catalog
from indicator_exchange.store import indicators as store
from indicator_exchange.store import lifecycle as lifecycle_store
from indicator_exchange.store.models import Collection

log = logging.getLogger(__name__)

NEVER = 2**63 - 1
SMALL_SEGMENT = 64  # changes recompiled together rather than kept as a segment of their own (~1.5 ms)


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _picture(collections: Sequence[Collection]) -> tuple[tuple[int, datetime], ...]:
    """What a delta cannot follow: a default TLP changes the visibility of stored rows; a collection created
    anew under an old id restarts its clock."""
    return tuple((int(c.default_tlp), c.created_at) for c in collections)


def enforced(
    indicator: Mapping[str, Any],
    now_us: int,
    policy: LifecyclePolicy | None = None,
    counted: Tally | None = None,
) -> bool:
    """Whether an indicator is matched at ``now_us``: a STIX pattern, not revoked, within its validity, and (with
    a ``policy``) on no warninglist and scoring, with the feedback ``counted``, at or above its kind's threshold
    (docs/lifecycle.md).

    The one place that decides.
    """
    if indicator.get("revoked") is True or indicator.get("pattern_type", "stix") != "stix":
        return False
    try:
        if "valid_from" in indicator and parse_timestamp_us(indicator["valid_from"]) > now_us:
            return False
        if "valid_until" in indicator and parse_timestamp_us(indicator["valid_until"]) <= now_us:
            return False
    except InvalidObject:
        return False
    return policy is None or policy.reason(indicator, now_us, counted) is None


def _transitions(
    indicator: Mapping[str, Any],
    now_us: int,
    policy: LifecyclePolicy | None = None,
    counted: Tally | None = None,
) -> Iterator[int]:
    """The future moments at which ``enforced`` may change its answer for this indicator (the score's fall below
    its threshold among them)."""
    if policy is not None:
        crossing = policy.crossing(indicator, now_us, counted)
        if crossing is not None:
            yield crossing
    for name in ("valid_from", "valid_until"):
        if name in indicator:
            try:
                at = parse_timestamp_us(indicator[name])
            except InvalidObject:
                continue
            if at > now_us:
                yield at


@dataclass(slots=True)
class _State:
    """What the database holds for an index, in memory: the refresher's alone (under its lock)."""

    collections: list[uuid.UUID]
    objects: list[dict[str, dict[str, Any]]]  # per collection: indicator id -> latest visible unrevoked version
    relations: list[dict[str, tuple[str, str]]]  # per collection: relationship id -> (indicator, campaign)
    campaign_refs: dict[str, dict[str, int]] = field(default_factory=dict)  # indicator -> campaign -> count
    due: list[tuple[int, str]] = field(default_factory=list)  # heap of (moment, indicator id)
    policy: LifecyclePolicy | None = None
    feedback: dict[str, Tally] = field(default_factory=dict)  # indicator id -> its tally (any indicator, held or not)
    feedback_clock: FeedbackClock = field(default_factory=FeedbackClock)

    def put_object(self, position: int, obj: dict[str, Any], now_us: int) -> None:
        self.objects[position][obj["id"]] = obj
        for at in _transitions(obj, now_us, self.policy, self.feedback.get(obj["id"])):
            heapq.heappush(self.due, (at, obj["id"]))

    def put_feedback(self, indicator_id: str, counted: Tally | None, now_us: int) -> bool:
        """Replace an indicator's tally (its score's next crossing queued); True if the index holds it."""
        if counted is None:
            self.feedback.pop(indicator_id, None)
        else:
            self.feedback[indicator_id] = counted
        held = False
        for table in self.objects:
            obj = table.get(indicator_id)
            if obj is not None:
                held = True
                for at in _transitions(obj, now_us, self.policy, counted):
                    heapq.heappush(self.due, (at, indicator_id))
        return held

    def put_relation(self, position: int, obj: Mapping[str, Any]) -> str | None:
        target = str(obj.get("target_ref", ""))
        if obj.get("relationship_type") != "indicates" or not target.startswith("campaign--"):
            return None
        source = str(obj.get("source_ref"))
        self.relations[position][str(obj["id"])] = (source, target)
        refs = self.campaign_refs.setdefault(source, {})
        refs[target] = refs.get(target, 0) + 1
        return source

    def drop_relation(self, position: int, relation_id: str) -> str | None:
        old = self.relations[position].pop(relation_id, None)
        if old is None:
            return None
        source, target = old
        refs = self.campaign_refs[source]
        refs[target] -= 1
        if refs[target] == 0:
            del refs[target]
            if not refs:
                del self.campaign_refs[source]
        return source

    def effective(self, indicator_id: str, now_us: int) -> tuple[dict[str, Any], uuid.UUID] | None:
        """The version matched for an id: the last collection's (in index order) that is enforced."""
        for position in range(len(self.objects) - 1, -1, -1):
            obj = self.objects[position].get(indicator_id)
            if obj is not None and enforced(obj, now_us, self.policy, self.feedback.get(indicator_id)):
                return obj, self.collections[position]
        return None

    def campaigns(self, indicator_id: str) -> list[str]:
        return sorted(self.campaign_refs.get(indicator_id, ()))

    def all_ids(self) -> Iterator[str]:
        if len(self.objects) == 1:
            yield from self.objects[0]
            return
        seen: set[str] = set()
        for table in self.objects:
            for key in table:
                if key not in seen:
                    seen.add(key)
                    yield key

    def pop_due(self, now_us: int) -> set[str]:
        ids = set()
        while self.due and self.due[0][0] <= now_us:
            ids.add(heapq.heappop(self.due)[1])
        return ids

    def copy(self) -> "_State":
        return _State(
            collections=list(self.collections),
            objects=[dict(t) for t in self.objects],
            relations=[dict(t) for t in self.relations],
            campaign_refs={k: dict(v) for k, v in self.campaign_refs.items()},
            due=list(self.due),
            policy=self.policy,
            feedback=dict(self.feedback),
            feedback_clock=self.feedback_clock,
        )


@dataclass(frozen=True, slots=True)
class IndexConfig:
    community_key: bytes
    key_id: str
    min_lsh_bands: int = 2
    overlay_limit: int = 20_000  # indicators in segments before the base is compiled again (in the background)
    lifecycle: LifecyclePolicy | None = None  # scores and warninglists (docs/lifecycle.md)
    feedback_poll_seconds: float = 0.5  # with ``lifecycle``: feedback rows are read again this long after the last read


def _compile(state: _State, ids: Iterable[str], now_us: int, config: IndexConfig, now: datetime) -> Layer:
    compiled = CompiledIndicators(
        community_key=config.community_key, key_id=config.key_id, min_lsh_bands=config.min_lsh_bands
    )
    compiled.built_at = now
    indicators: dict[str, Mapping[str, Any]] = {}
    origin: dict[str, uuid.UUID] = {}
    tallies: dict[str, Tally] = {}
    for indicator_id in ids:
        found = state.effective(indicator_id, now_us)
        if found is None:
            continue
        obj, collection_id = found
        before = compiled.indicator_count
        compiled.add(obj, state.campaigns(indicator_id))
        if compiled.indicator_count > before:
            indicators[indicator_id] = obj
            origin[indicator_id] = collection_id
            counted = state.feedback.get(indicator_id)
            if counted is not None:
                tallies[indicator_id] = counted
    compiled.finish()
    return Layer(compiled, indicators, origin, tallies)


class MatchIndex:
    """The index of one (collections, clearance, LSH threshold): a current generation and its refresher."""

    def __init__(self, collection_ids: Sequence[uuid.UUID], clearance: int, config: IndexConfig) -> None:
        self.collection_ids = list(collection_ids)
        self.clearance = clearance
        self.config = config
        self._generation: Generation | None = None
        self._state: _State | None = None
        self._lock = threading.Lock()  # one refresher at a time
        self._compacting: threading.Thread | None = None
        self._dirty_since_snapshot: set[str] | None = None  # ids changed while a new base is compiled
        self.full_builds = 0
        self.refreshes = 0
        self.refresh_cpu_seconds = 0.0
        self.compactions = 0
        self._wake: dict[uuid.UUID, int] = {}  # clocks announced by note_commit, not yet read
        self._feedback_read_at = time.monotonic()  # when the feedback rows were last read
        self._refreshed_at: datetime | None = None  # the moment of the last refresh (its due heap read up to it)

    @property
    def generation(self) -> Generation | None:
        return self._generation

    def note_commit(self, collection_id: uuid.UUID, clock: int) -> bool:
        """Remember that a collection reached ``clock``; True if this index serves it and is behind."""
        generation = self._generation
        if collection_id not in self.collection_ids or generation is None:
            return False
        known = dict(generation.clocks).get(collection_id, 0)
        if clock > known:
            self._wake[collection_id] = max(clock, self._wake.get(collection_id, 0))
            return True
        return False

    def _fresh(
        self,
        generation: Generation | None,
        clocks: Sequence[tuple[uuid.UUID, int]],
        picture: Sequence[tuple[int, datetime]],
        now_us: int,
    ) -> bool:
        if generation is None or generation.picture != tuple(picture) or now_us >= generation.next_due_us:
            return False
        if self._feedback_due():
            return False  # feedback on an indicator may have arrived in a collection this index does not serve
        return all(had >= seen for (_, had), (_, seen) in zip(generation.clocks, clocks, strict=True))

    def _feedback_due(self) -> bool:
        """Whether the feedback rows are to be read again: with a lifecycle policy, once per poll interval (not
        on every delta: a commit's first match would pay a query for it)."""
        return (
            self.config.lifecycle is not None
            and time.monotonic() - self._feedback_read_at >= self.config.feedback_poll_seconds
        )

    def current(self, session: Session, collections: Sequence[Collection], now: datetime) -> Generation:
        """The generation to match with, refreshed first if the collections moved past it."""
        clocks = tuple((c.id, int(c.last_date_added)) for c in collections)
        picture = _picture(collections)
        now_us = _us(now)
        generation = self._generation
        if generation is not None and self._fresh(generation, clocks, picture, now_us):
            return generation
        with self._lock:
            generation = self._generation
            if generation is not None and self._fresh(generation, clocks, picture, now_us):
                return generation
            if generation is None or self._state is None or generation.picture != picture:
                built = self._full_build(session, collections, now)
            else:
                cpu = time.thread_time()
                built = self._apply_deltas(session, collections, generation, self._state, now)
                self.refresh_cpu_seconds += time.thread_time() - cpu
            self._generation = built
            self._refreshed_at = now if self._refreshed_at is None else max(self._refreshed_at, now)
            return built

    def _full_build(self, session: Session, collections: Sequence[Collection], now: datetime) -> Generation:
        now_us = _us(now)
        state = _State(
            collections=[c.id for c in collections],
            objects=[{} for _ in collections],
            relations=[{} for _ in collections],
            policy=self.config.lifecycle,
        )
        if self.config.lifecycle is not None:
            feedback_rows = lifecycle_store.all_feedback(session)
            state.feedback = {key: tally(rows) for key, rows in feedback_rows.items()}
            state.feedback_clock = FeedbackClock.starting(
                ((row.id, row.recorded_at) for rows in feedback_rows.values() for row in rows), datetime.now(UTC)
            )
            self._feedback_read_at = time.monotonic()
        for position, collection in enumerate(collections):
            for raw in store.visible_latest(session, collection, self.clearance):
                obj = orjson.loads(raw)
                if obj.get("type") == "relationship":
                    state.put_relation(position, obj)
                elif obj.get("type") == "indicator":
                    state.objects[position][obj["id"]] = obj
                    for at in _transitions(obj, now_us, state.policy, state.feedback.get(obj["id"])):
                        state.due.append((at, obj["id"]))
        heapq.heapify(state.due)
        base = _compile(state, state.all_ids(), now_us, self.config, now)
        self._state = state
        self._dirty_since_snapshot = None
        self.full_builds += 1
        return Generation(
            base=base,
            segments=(),
            owner={},
            clocks=tuple((c.id, int(c.last_date_added)) for c in collections),
            picture=_picture(collections),
            next_due_us=state.due[0][0] if state.due else NEVER,
            indicator_count=len(base.indicators),
            built_at=now,
        )

    def _apply_deltas(
        self, session: Session, collections: Sequence[Collection], old: Generation, state: _State, now: datetime
    ) -> Generation:
        now_us = _us(now)
        dirty = state.pop_due(now_us)
        clocks = []
        for position, (collection, (_, had)) in enumerate(zip(collections, old.clocks, strict=True)):
            clock = int(collection.last_date_added)
            clocks.append((collection.id, max(clock, had)))
            if clock <= had:
                continue
            changed = store.changed_since(session, collection, self.clearance, had, clock)
            for stix_id, raw in sorted(changed.items()):
                if stix_id.startswith("relationship--"):
                    source = state.drop_relation(position, stix_id)
                    if source is not None:
                        dirty.add(source)
                    if raw is not None:
                        source = state.put_relation(position, orjson.loads(raw))
                        if source is not None:
                            dirty.add(source)
                elif stix_id.startswith("indicator--"):
                    dirty.add(stix_id)
                    if raw is None:
                        state.objects[position].pop(stix_id, None)
                    else:
                        state.put_object(position, orjson.loads(raw), now_us)
        if self._feedback_due():
            dirty |= self._read_feedback(session, state, now_us)
        self._wake.clear()
        if not dirty and tuple(clocks) == old.clocks:
            return old  # only a feedback poll, and nothing the index holds changed
        self.refreshes += 1
        if self._dirty_since_snapshot is not None:
            self._dirty_since_snapshot |= dirty
        generation = self._with_segment(old, state, dirty, now)
        generation = Generation(
            base=generation.base,
            segments=generation.segments,
            owner=generation.owner,
            clocks=tuple(clocks),
            picture=old.picture,
            next_due_us=state.due[0][0] if state.due else NEVER,
            indicator_count=generation.indicator_count,
            built_at=generation.built_at,
        )
        if generation.overlay_size >= self.config.overlay_limit:
            self._compact_soon(state, now)
        return generation

    def _read_feedback(self, session: Session, state: _State, now_us: int) -> set[str]:
        """Read the feedback rows stored since the last read; the indicators held whose tally changed."""
        clock = state.feedback_clock
        touched = clock.advance(lifecycle_store.feedback_ids_after(session, clock.settled), time.monotonic())
        self._feedback_read_at = time.monotonic()
        if not touched:
            return set()
        found = lifecycle_store.feedback_for(session, sorted(touched))
        changed = set()
        for indicator_id in touched:
            rows = found.get(indicator_id)
            if state.put_feedback(indicator_id, tally(rows) if rows else None, now_us):
                changed.add(indicator_id)
        return changed

    def _with_segment(self, old: Generation, state: _State, dirty: set[str], now: datetime) -> Generation:
        """``old`` with the current form of ``dirty`` ids in a new segment, neighbours of similar size merged."""
        if not dirty:
            return old
        now_us = _us(now)
        segments = list(old.segments)
        owner = dict(old.owner)
        ids = set(dirty)
        # Merge the tail while it is no larger than what is being compiled (a binary counter), or while both fit
        # in one small segment: sizes fall geometrically, so an id is recompiled O(log overlay) times, and every
        # segment costs each event a few probes, so a trickle of single changes stays in one.
        while segments and (
            len(segments[-1].indicators) <= len(ids) or len(segments[-1].indicators) + len(ids) <= SMALL_SEGMENT
        ):
            last = len(segments) - 1
            ids.update(key for key, where in owner.items() if where == last)
            segments.pop()
        segment = _compile(state, sorted(ids), now_us, self.config, now)
        number = len(segments)
        segments.append(segment)
        for key in ids:
            owner[key] = number if key in segment.indicators else GONE
        count = old.indicator_count
        for key in dirty | ids:
            count -= 1 if old.layer_of(key) is not None else 0
        count += len(segment.indicators)
        return Generation(
            base=old.base,
            segments=tuple(segments),
            owner=owner,
            clocks=old.clocks,
            picture=old.picture,
            next_due_us=old.next_due_us,
            indicator_count=count,
            built_at=old.built_at,
        )

    def _compact_soon(self, state: _State, now: datetime) -> None:
        """Compile a new base in the background from a copy of the state; called under the lock."""
        if self._compacting is not None and self._compacting.is_alive():
            return
        snapshot = state.copy()
        self._dirty_since_snapshot = set()

        def compact() -> None:
            # At the moment of the refresh the state was copied from, not the wall clock's: its due heap was read
            # up to then, and what falls due later is still in it (or among the ids changed meanwhile).
            moment = now
            base = _compile(snapshot, snapshot.all_ids(), _us(moment), self.config, moment)
            with self._lock:
                generation, current = self._generation, self._state
                dirty = self._dirty_since_snapshot
                self._dirty_since_snapshot = None
                if generation is None or current is not state or dirty is None:
                    return  # a full build replaced the state meanwhile: this base is stale
                fresh = Generation(
                    base=base,
                    segments=(),
                    owner={},
                    clocks=generation.clocks,
                    picture=generation.picture,
                    next_due_us=generation.next_due_us,
                    indicator_count=len(base.indicators),
                    built_at=moment,
                )
                # What changed while the base compiled, as of the last refresh; what falls due later is left to
                # the next one.
                self._generation = self._with_segment(fresh, current, dirty, self._refreshed_at or moment)
                self.compactions += 1

        self._compacting = threading.Thread(target=compact, name="match-compact", daemon=True)
        self._compacting.start()

    def wait_compaction(self, timeout: float | None = None) -> None:
        """Block until a background compaction (if any) is installed; for tests and benchmarks."""
        thread = self._compacting
        if thread is not None:
            thread.join(timeout)


class IndexRegistry:
    """The indexes of one process, least recently used dropped first (each holds its indicators in memory)."""

    def __init__(self) -> None:
        self._indexes: OrderedDict[tuple[tuple[uuid.UUID, ...], int, int], MatchIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    def get(
        self, collection_ids: Sequence[uuid.UUID], clearance: int, config: IndexConfig, *, max_indexes: int
    ) -> MatchIndex:
        key = (tuple(collection_ids), clearance, config.min_lsh_bands)
        with self._lock:
            index = self._indexes.get(key)
            if index is None or index.config != config:
                index = self._indexes[key] = MatchIndex(collection_ids, clearance, config)
            self._indexes.move_to_end(key)
            while len(self._indexes) > max_indexes:
                self._indexes.popitem(last=False)
            return index

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()

    def note_commit(self, collection_id: uuid.UUID, clock: int) -> None:
        """A commit reached ``collection_id`` at ``clock`` (e.g. a LISTEN/NOTIFY): wake the refresher.

        Safe from any thread and cheap; without a started refresher the next match refreshes instead.
        """
        with self._lock:
            behind = [index.note_commit(collection_id, clock) for index in self._indexes.values()]
        if any(behind):
            self._wake.set()

    def refresh_soon(self) -> None:
        """Wake the refresher to bring every index up to date (whatever changed)."""
        with self._lock:
            for index in self._indexes.values():
                generation = index.generation
                if generation is not None:
                    index._wake.update(dict(generation.clocks))
        self._wake.set()

    def start_refresher(self, sessions: Callable[[], AbstractContextManager[Session]]) -> None:
        """Refresh woken indexes in a background thread, each with a session from ``sessions()``."""
        if self._refresher is not None and self._refresher.is_alive():
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.is_set():
                self._wake.wait()
                self._wake.clear()
                if self._stop.is_set():
                    return
                with self._lock:
                    woken = [i for i in self._indexes.values() if i._wake]
                for index in woken:
                    try:
                        with sessions() as session:
                            found = [catalog.get_collection_by_id(session, c) for c in index.collection_ids]
                            if all(c is not None for c in found):
                                index.current(session, [c for c in found if c is not None], datetime.now(UTC))
                    except Exception:  # the next match refreshes in its own request; keep the thread alive
                        log.exception("match index refresh failed")

        self._refresher = threading.Thread(target=run, name="match-refresher", daemon=True)
        self._refresher.start()

    def stop_refresher(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._refresher is not None:
            self._refresher.join(5)
            self._refresher = None


INDEXES = IndexRegistry()
