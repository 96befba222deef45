"""Pulling from (and pushing to) a live instance of this server on loopback: two processes, two databases
(our store on one backend, the partner's on the other). Every version arrives exactly once and verbatim,
across page boundaries, incremental runs, stops and crashes."""

import itertools
import threading
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.stix.markings import Tlp
from indicator_exchange.sync import service as sync
from tests.fixtures.factories import make_indicator
from tests.fixtures.peers import (
    FAST_RETRY,
    Partner,
    add_source,
    local_collection,
    local_versions,
    seed_local,
    source_row,
)

LATER = "2026-03-01T00:00:00.000Z"


def statement_marking(identity: str) -> dict[str, Any]:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_URL, identity)}",
        "created": "2026-01-01T00:00:00.000Z",
        "created_by_ref": identity,
        "name": "Lab B sharing statement",
        "extensions": {},
        "definition_type": "statement",
        "definition": {"statement": "Shared under the indicator-exchange agreement; do not republish."},
    }


def attributed(partner: Partner, n: int, **overrides: Any) -> dict[str, object]:
    """An indicator the partner produced: its created_by_ref, TLP and statement markings, granular markings."""
    statement = statement_marking(partner.identity)["id"]
    return make_indicator(
        n,
        created_by_ref=partner.identity,
        tlp=None,
        object_marking_refs=[Tlp.AMBER.marking_id, statement],
        granular_markings=[{"marking_ref": statement, "selectors": ["description"]}],
        description=f"exit node {n} (unicode kept: naïve — ✓)",
        **overrides,
    )


def pull_source(sessions: sessionmaker[Session], partner: Partner, target: uuid.UUID, page_size: int) -> None:
    add_source(
        sessions,
        url=partner.discovery_url,
        api_root=partner.api_root,
        collection=str(partner.collection_id),
        target=target,
        page_size=page_size,
        credentials="env:PARTNER_SECRET",
    )


@pytest.fixture
def feed(partner: Partner, monkeypatch: pytest.MonkeyPatch) -> Partner:
    """The partner's collection with its statement marking and 30 indicators; its secret in PARTNER_SECRET."""
    monkeypatch.setenv("PARTNER_SECRET", partner.secret)
    partner.post([statement_marking(partner.identity), *(attributed(partner, n) for n in range(30))])
    return partner


class TestPullFromALiveInstance:
    def test_a_full_pull_copies_every_version_verbatim(self, feed: Partner, sessions: sessionmaker[Session]) -> None:
        target = local_collection(sessions)
        pull_source(sessions, feed, target, page_size=10)
        result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (result.outcome, result.pages, result.received, result.stored, result.rejected) == ("ok", 4, 31, 31, 0)
        assert local_versions(sessions, target) == feed.stored()  # byte for byte
        source = source_row(sessions)
        assert (source.last_outcome, source.objects_total, source.bookmark) == ("ok", 31, result.bookmark)

    def test_producer_attribution_and_markings_are_kept(self, feed: Partner, sessions: sessionmaker[Session]) -> None:
        target = local_collection(sessions)
        pull_source(sessions, feed, target, page_size=50)
        sync.pull(sessions, "partner", retry=FAST_RETRY)
        pulled = {key[0]: orjson.loads(raw) for key, raw in local_versions(sessions, target).items()}
        for n in range(30):
            sent = attributed(feed, n)
            got = pulled[str(sent["id"])]
            assert got == sent
            assert got["created_by_ref"] == feed.identity
            assert got["object_marking_refs"] == sent["object_marking_refs"]
            assert got["granular_markings"] == sent["granular_markings"]

    def test_an_incremental_pull_brings_only_new_objects_and_new_versions(
        self, feed: Partner, sessions: sessionmaker[Session]
    ) -> None:
        target = local_collection(sessions)
        pull_source(sessions, feed, target, page_size=10)
        assert sync.pull(sessions, "partner", retry=FAST_RETRY).stored == 31
        feed.post(
            [
                attributed(feed, 100),
                attributed(feed, 101),
                attributed(feed, 2, modified=LATER, confidence=80),  # a new version of an early object
                attributed(feed, 29, modified=LATER, revoked=True),  # and of the last one pulled
                attributed(feed, 5),  # an identical re-post: no new version anywhere
            ]
        )
        second = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (second.outcome, second.stored, second.rejected) == ("ok", 4, 0)
        assert local_versions(sessions, target) == feed.stored()
        third = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (third.outcome, third.stored) == ("ok", 0)
        assert len(local_versions(sessions, target)) == 35


class TestRestartMidPull:
    """A pull interrupted after N pages, by a stop, a crash after a commit or a failure before one, then
    resumed from the durable bookmark (with the partner writing in between) ends with every version once."""

    def resume_and_check(self, feed: Partner, sessions: sessionmaker[Session], target: uuid.UUID) -> None:
        feed.post([attributed(feed, 3, modified=LATER), attributed(feed, 27, modified=LATER), attributed(feed, 200)])
        resumed = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert resumed.outcome == "ok", resumed.summary()
        assert local_versions(sessions, target) == feed.stored()
        assert len(feed.stored()) == 34

    def test_a_stop_after_two_pages_then_resume(self, feed: Partner, sessions: sessionmaker[Session]) -> None:
        target = local_collection(sessions)
        pull_source(sessions, feed, target, page_size=7)
        stop = threading.Event()
        interrupted = sync.pull(
            sessions, "partner", retry=FAST_RETRY, stop=stop, on_page=lambda r: stop.set() if r.pages == 2 else None
        )
        assert (interrupted.outcome, interrupted.pages, interrupted.stored) == ("stopped", 2, 14)
        assert len(local_versions(sessions, target)) == 14
        assert source_row(sessions).last_outcome == "stopped"
        self.resume_and_check(feed, sessions, target)

    def test_a_crash_after_a_page_is_committed_then_resume(
        self, feed: Partner, sessions: sessionmaker[Session]
    ) -> None:
        target = local_collection(sessions)
        pull_source(sessions, feed, target, page_size=7)

        def crash(result: sync.SyncResult) -> None:
            if result.pages == 3:
                raise KeyboardInterrupt  # the process dies right after the third commit

        with pytest.raises(KeyboardInterrupt):
            sync.pull(sessions, "partner", retry=FAST_RETRY, on_page=crash)
        assert len(local_versions(sessions, target)) == 21
        self.resume_and_check(feed, sessions, target)

    def test_a_failure_before_a_page_is_committed_then_resume(
        self, feed: Partner, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        target = local_collection(sessions)
        pull_source(sessions, feed, target, page_size=7)
        real, calls = sync._store_page, itertools.count()

        def failing(*args: Any) -> None:
            if next(calls) == 2:
                raise OSError("disk full")
            real(*args)

        monkeypatch.setattr(sync, "_store_page", failing)
        with pytest.raises(OSError, match="disk full"):
            sync.pull(sessions, "partner", retry=FAST_RETRY)
        monkeypatch.setattr(sync, "_store_page", real)
        assert len(local_versions(sessions, target)) == 14  # the third page rolled back with its bookmark
        self.resume_and_check(feed, sessions, target)


class TestPushToALiveInstance:
    def test_push_sends_each_version_once_up_to_the_source_tlp(
        self, partner: Partner, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PARTNER_SECRET", partner.secret)
        local = local_collection(sessions, title="ours")
        ours = [make_indicator(n, created_by_ref=partner.identity, tlp=Tlp.GREEN) for n in range(12)]
        seed_local(sessions, local, [*ours, make_indicator(50, created_by_ref=partner.identity, tlp=Tlp.RED)])
        add_source(
            sessions,
            url=partner.discovery_url,
            api_root=partner.api_root,
            collection=str(partner.collection_id),
            target=local,
            page_size=5,
            credentials="env:PARTNER_SECRET",
            direction="push",
            max_tlp="amber",
        )
        stop = threading.Event()
        first = sync.push(
            sessions, "partner", retry=FAST_RETRY, stop=stop, on_page=lambda r: stop.set() if r.pages == 1 else None
        )
        assert (first.outcome, first.stored) == ("stopped", 5)
        rest = sync.push(sessions, "partner", retry=FAST_RETRY)
        assert (rest.outcome, rest.stored, rest.rejected) == ("ok", 7, 0)
        assert local_versions(sessions, local) == {**partner.stored(), **_red_only(sessions, local)}
        seed_local(sessions, local, [make_indicator(3, created_by_ref=partner.identity, modified=LATER)])
        again = sync.push(sessions, "partner", retry=FAST_RETRY)
        assert (again.outcome, again.pages, again.stored) == ("ok", 1, 1)
        assert len(partner.stored()) == 13


def _red_only(sessions: sessionmaker[Session], local: uuid.UUID) -> dict[tuple[str, int], str]:
    return {key: raw for key, raw in local_versions(sessions, local).items() if Tlp.RED.marking_id in raw}
