"""The live match index kept by deltas agrees with a full rebuild after every step of a random history of
adds, versions, revocations, expiries, TLP changes, campaign links, deletes and partner feedback (sightings and
opinions that move scores without a new version) — on both backends."""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from indicator_exchange.lifecycle import feedback
from indicator_exchange.lifecycle.enforcement import LifecyclePolicy
from indicator_exchange.match import service as matching
from indicator_exchange.match.events import Match, TrafficEvent
from indicator_exchange.match.feedback_clock import HOLE_WAIT, MAX_HOLES, FeedbackClock
from indicator_exchange.match.index import IndexConfig, IndexRegistry, MatchIndex
from indicator_exchange.settings import Settings
from indicator_exchange.stix.markings import TLP2_MARKING_IDS, Tlp
from indicator_exchange.stix.objects import format_timestamp_us, inspect_object
from indicator_exchange.store import catalog
from indicator_exchange.store import objects as store
from indicator_exchange.store.engine import make_engine, make_sessionmaker, read_only_engine
from tests.conftest import make_settings
from tests.fixtures.factories import make_collection

T0 = datetime(2026, 6, 1, tzinfo=UTC)
IDS = [f"indicator--{uuid.UUID(int=n)}" for n in range(1, 5)]
CAMPAIGNS = ["campaign--" + str(uuid.UUID(int=100 + n)) for n in range(2)]
IPS = ["46.91.113.1", "46.91.113.2", "46.112.100.7"]
CLEARANCE = int(Tlp.AMBER)

add = st.tuples(
    st.just("add"),
    st.integers(0, 1),  # collection
    st.integers(0, len(IDS) - 1),
    st.sampled_from([*IPS, "46.112.100.0/24"]),
    st.sampled_from([None, Tlp.GREEN, Tlp.AMBER, Tlp.RED]),  # RED: above the index's clearance, so hidden
    st.integers(-2, 2),  # valid_from, hours after the test clock
    st.sampled_from([1, 2, 4, None]),  # hours from valid_from to valid_until (None: no end)
    # A residential proxy exit (72 h, δ 2, threshold 50) of confidence 90 falls below its threshold ~14 h after
    # its anchor (~2 h with one false positive): feedback and time both move it in a short history.
    st.sampled_from([None, 90]),
)
revoke = st.tuples(st.just("revoke"), st.integers(0, 1), st.integers(0, len(IDS) - 1))
expire = st.tuples(st.just("time"), st.integers(1, 3))  # the clock moves on by hours
delete = st.tuples(st.just("delete"), st.integers(0, 1), st.integers(0, len(IDS) - 1), st.sampled_from(["all", "last"]))
link = st.tuples(st.just("link"), st.integers(0, 1), st.integers(0, len(IDS) - 1), st.integers(0, 1), st.booleans())
ORGS = [f"identity--{uuid.UUID(int=200 + n)}" for n in range(3)]
vote = st.tuples(
    st.just("feedback"),
    st.integers(0, 1),  # the collection it is posted to (the index follows feedback stored anywhere)
    st.integers(0, len(IDS) - 1),
    st.integers(0, len(ORGS) - 1),
    st.sampled_from(["sighting", "agree", "neutral", "disagree", "strongly-disagree"]),
)
steps = st.lists(st.one_of(add, revoke, expire, delete, link, vote), min_size=1, max_size=14)


class History:
    """Writes straight through the store (the layer every write path ends in), each step committed."""

    def __init__(self, session: Session, collections: list[uuid.UUID], settings: Settings | None = None) -> None:
        self.session = session
        self.settings = settings
        self.collections = collections
        self.now = T0
        self.stamp = T0 - timedelta(days=30)  # object versions: strictly increasing ``modified``
        self.last: dict[tuple[int, str], dict[str, Any]] = {}

    def _modified(self) -> str:
        self.stamp += timedelta(milliseconds=1)
        return format_timestamp_us(int(self.stamp.timestamp() * 1_000_000))

    def _write(self, position: int, obj: dict[str, Any]) -> None:
        collection_id = self.collections[position]
        store.lock_collection(self.session, collection_id)
        version = store.version_of(obj, inspect_object(obj))
        now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
        store.write_versions(self.session, collection_id, [version], now_us=now_us, added_by=None)
        self.session.commit()

    def apply(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        if kind == "time":
            self.now += timedelta(hours=step[1])
            return
        position, stix_id = step[1], IDS[step[2]]
        if kind == "feedback":
            self._feedback(step)
            return
        if kind == "add":
            _, _, _, value, level, starts, hours, confidence = step
            stamp = self._modified()
            obj: dict[str, Any] = {
                "type": "indicator",
                "spec_version": "2.1",
                "id": stix_id,
                "created": "2026-01-01T00:00:00.000Z",
                "modified": stamp,
                "pattern_type": "stix",
                "pattern": f"[ipv4-addr:value = '{value}']",
                "valid_from": self._at(timedelta(hours=starts)),
            }
            if value.endswith("/24"):
                obj["pattern"] = f"[ipv4-addr:value ISSUBSET '{value}']"
            if hours is not None:
                obj["valid_until"] = self._at(timedelta(hours=starts + hours))
            if level is not None:
                obj["object_marking_refs"] = [TLP2_MARKING_IDS[level]]
            if confidence is not None:
                obj["confidence"] = confidence
                obj["labels"] = ["residential-proxy"]
            self.last[(position, stix_id)] = obj
            self._write(position, obj)
        elif kind == "revoke":
            previous = self.last.get((position, stix_id))
            if previous is None:
                return
            revoked = {**previous, "modified": self._modified(), "revoked": True}
            self.last[(position, stix_id)] = revoked
            self._write(position, revoked)
        elif kind == "delete":
            versions = ("all",) if step[3] == "all" else ("last",)
            store.delete_versions(
                self.session,
                self.collections[position],
                stix_id,
                store.ReadFilter(version_keywords=versions),
                store.Visibility(clearance=4, default_tlp=0),
            )
            self.session.commit()
            self.last.pop((position, stix_id), None)
        elif kind == "link":
            _, _, _, campaign, revoked = step
            relation_id = f"relationship--{uuid.UUID(int=1000 + step[2] * 10 + campaign)}"
            self._write(
                position,
                {
                    "type": "relationship",
                    "spec_version": "2.1",
                    "id": relation_id,
                    "created": "2026-01-01T00:00:00.000Z",
                    "modified": self._modified(),
                    "relationship_type": "indicates",
                    "source_ref": stix_id,
                    "target_ref": CAMPAIGNS[campaign],
                    "revoked": revoked,
                },
            )

    def _feedback(self, step: tuple[Any, ...]) -> None:
        """A partner's sighting or opinion through the lifecycle's write path (what a TAXII POST or ``sync``
        records), at the test clock: no object version of the indicator moves."""
        _, position, number, org, verdict = step
        assert self.settings is not None
        at = self._at(timedelta(0))
        obj: dict[str, Any] = {
            "spec_version": "2.1",
            "created": at,
            "modified": at,
            "created_by_ref": ORGS[org],
        }
        if verdict == "sighting":
            obj.update(type="sighting", id=f"sighting--{uuid.uuid4()}", sighting_of_ref=IDS[number], last_seen=at)
        else:
            obj.update(type="opinion", id=f"opinion--{uuid.uuid4()}", opinion=verdict, object_refs=[IDS[number]])
        feedback.record(
            self.session,
            collection_id=self.collections[position],
            objects=[obj],
            caller=None,
            settings=self.settings,
            now=self.now,
        )
        self.session.commit()

    def _at(self, delta: timedelta) -> str:
        return format_timestamp_us(int((self.now + delta).timestamp() * 1_000_000))


def probes() -> list[tuple[int, TrafficEvent]]:
    return [(n, TrafficEvent(timestamp=T0, event_id=ip, source_ip=ip)) for n, ip in enumerate(IPS)]


def scored(matches: list[Match]) -> dict[str, float | None]:
    return {m.indicator_id: m.score for m in matches}


def seen(matches: list[Match]) -> list[tuple[int, str, str, bool, tuple[str, ...]]]:
    return sorted(
        (m.event_index, m.indicator_id, m.matched, m.verified, tuple(sorted(m.campaign_ids))) for m in matches
    )


def collections_of(session: Session, ids: list[uuid.UUID]) -> list[Any]:
    session.expire_all()
    found = [catalog.get_collection_by_id(session, c) for c in sorted(ids)]
    assert all(c is not None for c in found)
    return found


@pytest.fixture
def ix_settings(db_url: str) -> Settings:
    return make_settings(db_url)


class TestDeltasAgreeWithFullRebuild:
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(history=steps)
    @pytest.mark.parametrize("overlay_limit", [20_000, 3], ids=["segments", "compacting"])
    def test_after_every_step(
        self, session: Session, ix_settings: Settings, overlay_limit: int, history: list[tuple[Any, ...]]
    ) -> None:
        """``compacting``: past 3 changed indicators a new base is compiled in the background, installed here
        before each comparison, with whatever changed meanwhile laid over it."""
        ids = [make_collection(session, default_tlp="amber"), make_collection(session, default_tlp="green")]
        session.commit()
        config = IndexConfig(
            community_key=ix_settings.community_key_bytes,
            key_id=ix_settings.community_key_id,
            overlay_limit=overlay_limit,
            lifecycle=LifecyclePolicy.of(ix_settings),  # as the service configures it: scores and warninglists
            feedback_poll_seconds=0.0,  # read feedback on every request: the test's clock is not the wall's
        )
        writes = History(session, ids, ix_settings)
        live = MatchIndex(sorted(ids), CLEARANCE, config)
        live.current(session, collections_of(session, ids), writes.now)
        for step in history:
            writes.apply(step)
            collections = collections_of(session, ids)
            delta = live.current(session, collections, writes.now)
            live.wait_compaction()
            delta = live.current(session, collections, writes.now)
            full = MatchIndex(sorted(ids), CLEARANCE, config).current(session, collections, writes.now)
            legacy = matching.load_indicator_set(
                session, collections, clearance=CLEARANCE, settings=ix_settings, now=writes.now
            )
            assert dict(delta.origin) == dict(full.origin) == legacy.origin, step
            assert delta.indicator_count == full.indicator_count == legacy.indicator_count, step
            assert seen(list(delta.match_indexed(probes()))) == seen(list(full.match_indexed(probes()))), step
            assert seen(list(full.match_indexed(probes()))) == seen(list(legacy.match_indexed(probes()))), step
            live_scores = scored(matching.match_events(delta, probes(), settings=ix_settings, now=writes.now))
            legacy_scores = scored(matching.match_events(legacy, probes(), settings=ix_settings, now=writes.now))
            assert live_scores == legacy_scores, step
        assert live.full_builds == 1, "a delta step fell back to a full rebuild"


def add_step(n: int, value: str) -> tuple[Any, ...]:
    return ("add", 0, n, value, None, 0, None, None)


class TestRefresher:
    def test_concurrent_requests_that_see_a_change_refresh_once(
        self, session: Session, db_url: str, ix_settings: Settings
    ) -> None:
        engine = make_engine(db_url, pool_size=10)  # a connection per request thread
        sessions = make_sessionmaker(read_only_engine(engine))  # SQLite: readers begin DEFERRED
        ids = [make_collection(session)]
        session.commit()
        config = IndexConfig(community_key=ix_settings.community_key_bytes, key_id=ix_settings.community_key_id)
        writes = History(session, ids)
        live = MatchIndex(ids, CLEARANCE, config)
        live.current(session, collections_of(session, ids), writes.now)
        writes.apply(add_step(0, IPS[0]))
        barrier = threading.Barrier(8)
        seen_by: list[int] = []

        def request() -> None:
            with sessions() as own:
                collections = collections_of(own, ids)
                barrier.wait()
                generation = live.current(own, collections, writes.now)
                seen_by.append(generation.indicator_count)

        threads = [threading.Thread(target=request) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        engine.dispose()
        assert seen_by == [1] * 8
        assert (live.refreshes, live.full_builds) == (1, 1)

    def test_a_compacted_base_keeps_what_changed_while_it_compiled(
        self, session: Session, ix_settings: Settings
    ) -> None:
        ids = [make_collection(session)]
        session.commit()
        config = IndexConfig(
            community_key=ix_settings.community_key_bytes, key_id=ix_settings.community_key_id, overlay_limit=2
        )
        writes = History(session, ids)
        live = MatchIndex(ids, CLEARANCE, config)
        live.current(session, collections_of(session, ids), writes.now)
        for n, value in enumerate(IPS):
            writes.apply(add_step(n, value))
            live.current(session, collections_of(session, ids), writes.now)
        live.wait_compaction()
        writes.apply(("revoke", 0, 0))
        generation = live.current(session, collections_of(session, ids), writes.now)
        assert live.compactions >= 1
        assert len(generation.base.indicators) >= 2, "the compacted base holds the indicators added before it"
        assert sorted(generation.indicators) == sorted(IDS[1:3])
        assert [m.indicator_id for m in generation.match_indexed(probes())] == [IDS[1], IDS[2]]

    def test_a_commit_notification_refreshes_without_a_request(
        self, session: Session, db_url: str, ix_settings: Settings
    ) -> None:
        engine = make_engine(db_url, pool_size=2)
        registry = IndexRegistry()
        config = IndexConfig(community_key=ix_settings.community_key_bytes, key_id=ix_settings.community_key_id)
        ids = [make_collection(session)]
        session.commit()
        writes = History(session, ids)
        index = registry.get(ids, CLEARANCE, config, max_indexes=2)
        index.current(session, collections_of(session, ids), datetime.now(UTC))
        registry.start_refresher(make_sessionmaker(read_only_engine(engine)))
        try:
            writes.apply(("add", 0, 0, IPS[0], None, -1, None, None))
            clock = collections_of(session, ids)[0].last_date_added
            registry.note_commit(ids[0], clock)
            deadline = time.monotonic() + 5
            while index.refreshes == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            registry.stop_refresher()
            engine.dispose()
        generation = index.generation
        assert generation is not None
        assert index.refreshes == 1, "the refresher did not wake"
        assert sorted(generation.indicators) == [IDS[0]]


class TestFeedbackClock:
    def test_an_id_skipped_by_a_read_is_read_when_its_transaction_commits(self) -> None:
        clock = FeedbackClock()
        assert clock.advance([(1, "i1"), (3, "i3")], now=0.0) == {"i1", "i3"}
        assert (clock.settled, set(clock.holes)) == (1, {2})  # 2 is in an open transaction
        assert clock.advance([(3, "i3"), (4, "i4")], now=1.0) == {"i4"}  # 3 is not read twice
        assert clock.advance([(2, "i2"), (3, "i3"), (4, "i4")], now=2.0) == {"i2"}
        assert (clock.settled, clock.holes, clock.seen) == (4, {}, set())

    def test_a_hole_is_given_up_after_the_wait(self) -> None:
        clock = FeedbackClock()
        clock.advance([(1, "i1"), (3, "i3")], now=0.0)  # 2 rolled back: never appears
        clock.advance([(3, "i3")], now=HOLE_WAIT + 1)
        assert (clock.settled, clock.holes) == (3, {})

    def test_a_full_read_leaves_only_recent_ids_open(self) -> None:
        now = datetime(2026, 6, 1, tzinfo=UTC)
        old, recent = now - timedelta(seconds=HOLE_WAIT * 2), now - timedelta(seconds=1)
        clock = FeedbackClock.starting([(1, old), (4, old), (6, recent), (9, recent)], now)
        assert clock.settled == 4
        assert set(clock.holes) == {5, 7, 8}

    def test_a_jump_of_the_sequence_is_not_waited_for(self) -> None:
        clock = FeedbackClock()
        assert clock.advance([(1, "i1"), (MAX_HOLES + 10, "i2")], now=0.0) == {"i1", "i2"}
        assert (clock.settled, clock.holes, clock.seen) == (MAX_HOLES + 10, {}, set())
