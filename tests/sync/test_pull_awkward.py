"""Pulling from servers that misbehave: timestamp ties across page boundaries, servers that loop, fail or drop
connections, servers without ``next``, pages emptied by server-side filtering, and invalid objects."""

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.stix.objects import parse_timestamp_us
from indicator_exchange.sync import service as sync
from indicator_exchange.sync.taxii_client import RetryPolicy
from tests.fixtures.factories import make_indicator
from tests.fixtures.peers import (
    FAST_RETRY,
    Awkwardness,
    AwkwardServer,
    add_source,
    awkward_taxii,
    date_added,
    local_collection,
    local_versions,
    rejections,
    seed_local,
    source_row,
    stored_ids,
)


def ids(*numbers: int) -> list[str]:
    return sorted(str(make_indicator(n)["id"]) for n in numbers)


def feed(count: int, *, per_timestamp: int = 1) -> list[tuple[str, Any]]:
    """``count`` indicators, ``per_timestamp`` of them sharing each date_added."""
    return [(date_added(n // per_timestamp), make_indicator(n)) for n in range(count)]


@pytest.fixture
def server() -> Iterator[AwkwardServer]:
    with awkward_taxii(feed(24, per_timestamp=4)) as awkward:
        yield awkward


@pytest.fixture
def target(sessions: sessionmaker[Session]) -> uuid.UUID:
    return local_collection(sessions)


def watch(sessions: sessionmaker[Session], server: AwkwardServer, target: uuid.UUID, page_size: int = 5) -> None:
    add_source(sessions, url=server.api_root_url, collection="c", target=target, page_size=page_size)


class TestTimestampTies:
    """Four objects share each date_added and pages hold five, so every page boundary splits a tie."""

    @pytest.mark.parametrize("paging", ["next", "no-next"])
    def test_ties_across_page_boundaries_lose_nothing(
        self, server: AwkwardServer, paging: str, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        server.awkwardness.paging = paging
        watch(sessions, server, target)
        result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (result.outcome, result.stored) == ("ok", 24), result.summary()
        assert stored_ids(sessions, target) == ids(*range(24))
        assert result.bookmark == date_added(5)
        again = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (again.outcome, again.stored, again.rejected) == ("ok", 0, 0)
        assert len(local_versions(sessions, target)) == 24

    @pytest.mark.parametrize("paging", ["next", "no-next"])
    def test_a_restart_inside_a_tie_loses_nothing(
        self, server: AwkwardServer, paging: str, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        server.awkwardness.paging = paging
        watch(sessions, server, target)
        stop = threading.Event()
        first = sync.pull(sessions, "partner", retry=FAST_RETRY, stop=stop, on_page=lambda r: stop.set())
        assert (first.outcome, first.stored, first.bookmark) == ("stopped", 5, date_added(1))  # mid-tie
        server.objects.append((date_added(9), make_indicator(99)))
        resumed = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert resumed.outcome == "ok", resumed.summary()
        assert stored_ids(sessions, target) == ids(*range(24), 99)

    def test_a_tie_larger_than_a_page_without_next(self, sessions: sessionmaker[Session], target: uuid.UUID) -> None:
        objects = [(date_added(0), make_indicator(0)), *((date_added(1), make_indicator(n)) for n in range(1, 14))]
        objects += [(date_added(2), make_indicator(n)) for n in range(14, 17)]
        with awkward_taxii(objects, Awkwardness(paging="no-next")) as server:
            watch(sessions, server, target)
            result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert result.outcome == "ok", result.summary()
        assert stored_ids(sessions, target) == ids(*range(17))


class TestNoNext:
    def test_pages_by_added_after_from_the_date_added_headers(
        self, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        with awkward_taxii(feed(12), Awkwardness(paging="no-next")) as server:
            watch(sessions, server, target)
            result = sync.pull(sessions, "partner", retry=FAST_RETRY)
            asked = [query.get("added_after") for query in server.object_requests]
        assert (result.outcome, result.stored, result.pages) == ("ok", 12, 3)
        # each page starts just before the previous page's X-TAXII-Date-Added-Last (ties are fetched again)
        assert asked == [None, "2026-11-01T00:00:03.999999Z", "2026-11-01T00:00:07.999999Z"]
        assert stored_ids(sessions, target) == ids(*range(12))

    def test_an_incremental_pull_starts_from_the_bookmark(
        self, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        with awkward_taxii(feed(6), Awkwardness(paging="no-next")) as server:
            watch(sessions, server, target)
            sync.pull(sessions, "partner", retry=FAST_RETRY)
            server.objects += [(date_added(10), make_indicator(10)), (date_added(11), make_indicator(11))]
            del server.object_requests[:]
            second = sync.pull(sessions, "partner", retry=FAST_RETRY)
            assert server.object_requests[0]["added_after"] == "2026-11-01T00:00:04.999999Z"
        assert (second.outcome, second.stored) == ("ok", 2)
        assert stored_ids(sessions, target) == ids(0, 1, 2, 3, 4, 5, 10, 11)


class TestLoops:
    @pytest.mark.parametrize("paging", ["same-token", "cycle", "new-token", "ignore-added-after"])
    def test_a_looping_server_is_detected_in_bounded_time(
        self, server: AwkwardServer, paging: str, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        server.awkwardness.paging = paging
        watch(sessions, server, target)
        started = time.monotonic()
        result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert result.outcome == "loop-detected", result.summary()
        assert time.monotonic() - started < 5
        assert len(server.object_requests) <= 4
        expected = ids(*range(10)) if paging == "cycle" else ids(*range(5))
        assert stored_ids(sessions, target) == expected  # what it served, once
        source = source_row(sessions)
        assert source.last_outcome == "loop-detected"
        assert sync.pull(sessions, "partner", retry=FAST_RETRY).outcome == "loop-detected"  # and again next run
        assert stored_ids(sessions, target) == expected


class TestFailures:
    @pytest.mark.parametrize("failure", ["500", "503", "drop", "truncate"])
    def test_every_third_request_failing_is_retried_to_completion(
        self, server: AwkwardServer, failure: str, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        server.awkwardness.fail_every, server.awkwardness.failure = 3, failure
        watch(sessions, server, target, page_size=3)
        result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert result.outcome == "ok", result.summary()
        assert result.retries == server.failures >= 3
        assert stored_ids(sessions, target) == ids(*range(24))

    def test_retries_give_up_and_the_next_run_resumes(
        self, server: AwkwardServer, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        watch(sessions, server, target, page_size=5)
        stop = threading.Event()
        sync.pull(sessions, "partner", retry=FAST_RETRY, stop=stop, on_page=lambda r: stop.set())
        server.awkwardness.fail_every = 1
        failed = sync.pull(sessions, "partner", retry=RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002))
        assert (failed.outcome, failed.retries, failed.stored) == ("error", 2, 0)
        assert failed.error is not None
        assert "500" in failed.error
        source = source_row(sessions)
        assert (source.last_outcome, source.bookmark) == ("error", date_added(1))
        assert source.last_error == failed.error
        server.awkwardness.fail_every = 0
        healed = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (healed.outcome, healed.stored) == ("ok", 19)
        assert stored_ids(sessions, target) == ids(*range(24))

    def test_a_stop_interrupts_the_backoff(
        self, server: AwkwardServer, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        server.awkwardness.fail_every = 1
        watch(sessions, server, target)
        stop = threading.Event()
        timer = threading.Timer(0.3, stop.set)
        timer.start()
        started = time.monotonic()
        result = sync.pull(sessions, "partner", retry=RetryPolicy(attempts=20, base_delay=20, max_delay=60), stop=stop)
        timer.cancel()
        assert result.outcome == "stopped", result.summary()
        assert time.monotonic() - started < 5
        assert source_row(sessions).last_outcome == "stopped"


class TestServerSideFiltering:
    @pytest.mark.parametrize("hidden", [range(5, 10), range(5, 15)])
    def test_pages_emptied_by_the_server_are_followed(
        self, server: AwkwardServer, hidden: range, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        server.awkwardness.hidden = set(hidden)
        watch(sessions, server, target)
        result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert result.outcome == "ok", result.summary()
        assert stored_ids(sessions, target) == ids(*(n for n in range(24) if n not in hidden))


INVALID: list[tuple[Any, str | None, str]] = [
    ({"type": "indicator", "id": "indicator--broken", "spec_version": "2.1"}, "indicator--broken", "UUID"),
    ({**make_indicator(1001), "spec_version": "2.0"}, str(make_indicator(1001)["id"]), "spec_version"),
    ({**make_indicator(1002), "modified": "2020-01-01T00:00:00Z"}, str(make_indicator(1002)["id"]), "earlier"),
    ({**make_indicator(1003), "type": "malware"}, str(make_indicator(1003)["id"]), "does not match"),
    ({**make_indicator(1004), "created": "yesterday"}, str(make_indicator(1004)["id"]), "not a STIX timestamp"),
    ({**make_indicator(1005), "created_by_ref": 7}, str(make_indicator(1005)["id"]), "created_by_ref"),
    ({"no": "type"}, None, "'type'"),
    ("not an object", None, "JSON object"),
]


class TestValidation:
    def test_invalid_objects_are_recorded_not_stored(self, sessions: sessionmaker[Session], target: uuid.UUID) -> None:
        objects = feed(10)
        for n, (obj, _, _) in enumerate(INVALID):
            objects.insert(2 * n + 1, (objects[2 * n][0], obj))
        objects.append((date_added(30), INVALID[0][0]))  # and at the very end
        with awkward_taxii(objects) as server:
            watch(sessions, server, target, page_size=4)
            result = sync.pull(sessions, "partner", retry=FAST_RETRY)
            assert (result.outcome, result.stored, result.rejected) == ("ok", 10, len(INVALID)), result.summary()
            assert stored_ids(sessions, target) == ids(*range(10))
            recorded = rejections(sessions)
            assert len(recorded) == len(INVALID)
            for (_, object_id, reason), (got_id, got_reason) in zip(
                sorted(INVALID, key=lambda i: (i[1] or "", i[2])),
                sorted(recorded, key=lambda r: (r[0] or "", r[1])),
                strict=True,
            ):
                assert (got_id, reason in got_reason) == (object_id, True), got_reason
            # The next runs read the last page's timestamp again: its rejection is not recorded twice.
            for _ in range(2):
                again = sync.pull(sessions, "partner", retry=FAST_RETRY)
                assert (again.outcome, again.stored, again.rejected) == ("ok", 0, 0)
        assert rejections(sessions) == recorded
        assert source_row(sessions).rejected_total == len(INVALID)

    def test_a_conflicting_local_version_is_recorded_not_overwritten(
        self, sessions: sessionmaker[Session], target: uuid.UUID
    ) -> None:
        seed_local(sessions, target, [make_indicator(3, name="our own copy")])
        with awkward_taxii(feed(6)) as server:
            watch(sessions, server, target)
            result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (result.outcome, result.stored, result.rejected) == ("ok", 5, 1)
        [(object_id, reason)] = rejections(sessions)
        assert object_id == make_indicator(3)["id"]
        assert "different object" in reason
        assert "our own copy" in local_versions(sessions, target)[(str(object_id), _version(make_indicator(3)))]


def _version(obj: dict[str, object]) -> int:
    return parse_timestamp_us(obj["modified"])
