"""Pulling from the OASIS reference server (medallion 3.0, memory backend) on loopback.

medallion gives every object of one POST the same ``date_added`` and reuses one ``next`` token for all the
pages of a listing, so these runs also cross timestamp ties at page boundaries and repeated tokens.
"""

import threading
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.stix.markings import Tlp
from indicator_exchange.sync import service as sync
from tests.fixtures.factories import make_indicator
from tests.fixtures.peers import FAST_RETRY, MedallionServer, add_source, local_collection, local_versions

THEIRS = "identity--3c2b1a00-0000-4000-8000-00000000beef"
LATER = "2026-03-01T00:00:00.000Z"


def theirs(n: int, **overrides: Any) -> dict[str, object]:
    return make_indicator(n, created_by_ref=THEIRS, tlp=Tlp.AMBER, **overrides)


@pytest.fixture
def collection(medallion: MedallionServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MEDALLION_SECRET", medallion.secret)
    return medallion.new_collection()


def pulled(sessions: sessionmaker[Session], target: uuid.UUID) -> set[tuple[str, str]]:
    return {(stix_id, orjson.loads(raw)["modified"]) for (stix_id, _), raw in local_versions(sessions, target).items()}


def medallion_source(sessions: sessionmaker[Session], medallion: MedallionServer, collection: str) -> uuid.UUID:
    target = local_collection(sessions)
    add_source(
        sessions,
        url=f"{medallion.base}/taxii2/",
        api_root="api1",
        collection=collection,
        target=target,
        page_size=5,
        credentials="env:MEDALLION_SECRET",
    )
    return target


class TestPullFromMedallion:
    def test_full_then_incremental_pull(
        self, medallion: MedallionServer, collection: str, sessions: sessionmaker[Session]
    ) -> None:
        medallion.post(collection, [theirs(n) for n in range(12)])  # twelve objects, one date_added
        target = medallion_source(sessions, medallion, collection)
        first = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (first.outcome, first.pages, first.stored, first.rejected) == ("ok", 3, 12, 0), first.summary()
        assert pulled(sessions, target) == medallion.stored(collection)

        medallion.post(collection, [theirs(20), theirs(21), theirs(4, modified=LATER), theirs(11, modified=LATER)])
        second = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (second.outcome, second.stored, second.rejected) == ("ok", 4, 0), second.summary()
        assert pulled(sessions, target) == medallion.stored(collection)
        assert len(medallion.stored(collection)) == 16
        assert (sync.pull(sessions, "partner", retry=FAST_RETRY).stored, len(pulled(sessions, target))) == (0, 16)

    def test_objects_arrive_as_the_producer_wrote_them(
        self, medallion: MedallionServer, collection: str, sessions: sessionmaker[Session]
    ) -> None:
        granular = [{"marking_ref": Tlp.RED.marking_id, "selectors": ["name"]}]
        sent = [theirs(n, granular_markings=granular) for n in range(3)]
        medallion.post(collection, sent)
        target = medallion_source(sessions, medallion, collection)
        sync.pull(sessions, "partner", retry=FAST_RETRY)
        stored = {key[0]: raw for key, raw in local_versions(sessions, target).items()}
        for obj in sent:
            assert orjson.loads(stored[str(obj["id"])]) == obj
            assert stored[str(obj["id"])] == orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()

    def test_a_restart_inside_a_timestamp_tie_loses_and_duplicates_nothing(
        self, medallion: MedallionServer, collection: str, sessions: sessionmaker[Session]
    ) -> None:
        medallion.post(collection, [theirs(n) for n in range(12)])
        medallion.post(collection, [theirs(n) for n in range(12, 20)])
        target = medallion_source(sessions, medallion, collection)
        stop = threading.Event()
        interrupted = sync.pull(
            sessions, "partner", retry=FAST_RETRY, stop=stop, on_page=lambda r: stop.set() if r.pages == 1 else None
        )
        assert (interrupted.outcome, interrupted.stored) == ("stopped", 5)  # stopped inside the first tie
        medallion.post(collection, [theirs(1, modified=LATER)])
        resumed = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert resumed.outcome == "ok", resumed.summary()
        assert pulled(sessions, target) == medallion.stored(collection)
        assert len(pulled(sessions, target)) == 21

    def test_answers_lost_after_medallion_served_them_lose_nothing(
        self, medallion: MedallionServer, collection: str, sessions: sessionmaker[Session]
    ) -> None:
        """medallion keeps `next` state server-side: a page it served whose answer was lost is gone from that
        paging session, so a retry with the same token would skip it."""
        medallion.post(collection, [theirs(n) for n in range(40)])
        target = medallion_source(sessions, medallion, collection)
        medallion.proxy.fail_every = 3
        try:
            result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        finally:
            medallion.proxy.fail_every = 0
        assert result.outcome == "ok", result.summary()
        assert medallion.proxy.lost >= 3
        assert pulled(sessions, target) == medallion.stored(collection)
        assert len(pulled(sessions, target)) == 40
