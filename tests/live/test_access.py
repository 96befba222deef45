"""Who may read a stream or a long poll, and what they see: grants, TLP clearance, revocation, audit."""

import threading
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from indicator_exchange.admin import service as admin
from indicator_exchange.auth.limits import OBJECTS_SCOPE
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store import counters
from indicator_exchange.store.engine import session_scope
from indicator_exchange.store.models import AuditEvent
from tests.fixtures.factories import make_indicator
from tests.live.conftest import Live
from tests.live.sse import subscribe


def marked(n: int, tlp: Tlp) -> dict[str, object]:
    return make_indicator(n, tlp=tlp)


class TestGrants:
    def test_no_grant_is_a_missing_collection_and_write_only_is_forbidden(self, live: Live) -> None:
        stranger = live.add_key("stranger")
        writer = live.add_key("writer", write=[live.collection])
        assert httpx.get(live.stream_url(), headers=stranger.basic).status_code == 404
        assert httpx.get(live.stream_url(), headers=writer.basic).status_code == 403
        assert httpx.get(live.stream_url(), headers={"Accept": "text/event-stream"}).status_code == 401

    def test_unknown_collection_is_404(self, live: Live) -> None:
        answer = httpx.get(
            live.stream_url().replace(str(live.collection), "no-such-collection"), headers=live.key.basic
        )
        assert answer.status_code == 404
        assert answer.json()["error"]

    def test_a_nul_or_overlong_collection_is_400_not_500(self, live: Live) -> None:
        # PostgreSQL text cannot hold a NUL: looking the alias up was a 500 (DataError).
        for bad in ("%00", "a%00b", "x" * 129):
            answer = httpx.get(live.stream_url().replace(str(live.collection), bad), headers=live.key.basic)
            assert answer.status_code == 400, (bad, answer.text)
            assert answer.json()["error"]


class TestClearance:
    def test_stream_filters_by_tlp_and_the_heartbeat_passes_what_is_hidden(self, live: Live) -> None:
        green = live.add_key("green-reader", clearance="green", read=[live.collection])
        with subscribe(live.stream_url(), green.bearer) as stream:
            stream.next(skip_heartbeats=False)
            live.post(marked(1, Tlp.AMBER), marked(2, Tlp.RED))
            live.post(marked(3, Tlp.GREEN), marked(4, Tlp.AMBER))
            received, last = stream.objects(1)
            assert [o["name"] for o in received] == ["Residential proxy exit 3"]
            live.post(marked(5, Tlp.RED))
            beat = stream.next(skip_heartbeats=False, timeout=5)
            assert beat.event == "heartbeat"
            assert beat.id != last  # moved past the red object it will never see
        with subscribe(live.stream_url(), {**green.bearer, "Last-Event-ID": str(beat.id)}) as stream:
            live.post(marked(6, Tlp.GREEN))
            after, _ = stream.objects(1)
        assert [o["name"] for o in after] == ["Residential proxy exit 6"]

    def test_long_poll_is_held_past_what_the_caller_may_not_see(self, live: Live) -> None:
        green = live.add_key("green-poller", clearance="green", read=[live.collection])
        live.post(marked(1, Tlp.GREEN))
        first = httpx.get(live.objects_url(), headers=green.basic).json()
        assert len(first["objects"]) == 1
        added_last = httpx.get(live.objects_url(), headers=green.basic).headers["X-TAXII-Date-Added-Last"]

        def later() -> None:
            time.sleep(0.5)
            live.post(marked(2, Tlp.AMBER))  # wakes the poll, which reads nothing it may see and waits again
            time.sleep(0.5)
            live.post(marked(3, Tlp.GREEN))

        writer = threading.Thread(target=later)
        started = time.monotonic()
        writer.start()
        answer = httpx.get(
            live.objects_url(),
            params={"added_after": added_last},
            headers={**green.basic, "Prefer": "wait=10"},
            timeout=30,
        )
        took = time.monotonic() - started
        writer.join()
        assert answer.status_code == 200
        assert answer.headers["Preference-Applied"] == "wait=10"
        assert [o["name"] for o in answer.json()["objects"]] == ["Residential proxy exit 3"]
        assert 0.9 < took < 5


class TestLongPoll:
    def test_without_the_preference_nothing_waits(self, live: Live) -> None:
        started = time.monotonic()
        answer = httpx.get(live.objects_url(), headers=live.key.basic)
        assert answer.status_code == 200
        assert "Preference-Applied" not in answer.headers
        assert time.monotonic() - started < 10  # far below any wait a held poll would take (up to 30 s)

    def test_an_empty_poll_is_answered_after_wait_seconds(self, live: Live) -> None:
        started = time.monotonic()
        answer = httpx.get(live.objects_url(), headers={**live.key.basic, "Prefer": "wait=1"}, timeout=30)
        took = time.monotonic() - started
        assert answer.status_code == 200
        assert answer.headers["Preference-Applied"] == "wait=1"
        assert "objects" not in answer.json()
        assert 0.9 < took < 10  # held for the second asked, not for the 30 s clamp

    def test_a_larger_wait_is_clamped_and_a_nonempty_poll_is_not_held(self, live: Live) -> None:
        live.post(marked(1, Tlp.GREEN))
        started = time.monotonic()
        answer = httpx.get(live.objects_url(), headers={**live.key.basic, "Prefer": "wait=999"}, timeout=60)
        assert time.monotonic() - started < 10  # not held for the 30 s the clamp allows
        assert answer.headers["Preference-Applied"] == "wait=30"
        assert len(answer.json()["objects"]) == 1

    def test_a_commit_answers_a_held_poll_at_once(self, live: Live) -> None:
        threading.Timer(0.5, lambda: live.post(marked(7, Tlp.GREEN))).start()
        started = time.monotonic()
        answer = httpx.get(live.objects_url(), headers={**live.key.basic, "Prefer": "wait=20"}, timeout=60)
        took = time.monotonic() - started
        assert [o["name"] for o in answer.json()["objects"]] == ["Residential proxy exit 7"]
        assert took < 10  # answered by the commit at 0.5 s, not by the 20 s wait


class TestRevocation:
    def test_revoking_the_key_ends_the_stream_within_a_second(self, live: Live) -> None:
        reader = live.add_key("revoked-reader", read=[live.collection])
        with subscribe(live.stream_url(), reader.basic) as stream:
            stream.next(skip_heartbeats=False)
            started = time.monotonic()
            with session_scope(live.sessions) as session:
                admin.revoke_key(session, key_id=reader.key_id)
            end = stream.next(timeout=5)
            took = time.monotonic() - started
        assert end.event == "end"
        assert "no longer valid" in end.json["reason"]
        assert took < 1.0

    def test_removing_the_grant_ends_the_stream_within_a_second(self, live: Live) -> None:
        reader = live.add_key("ungranted-reader", read=[live.collection])
        with subscribe(live.stream_url(), reader.basic) as stream:
            stream.next(skip_heartbeats=False)
            started = time.monotonic()
            with session_scope(live.sessions) as session:
                admin.revoke_grant(session, principal="ungranted-reader", collection_id=live.collection)
            end = stream.next(timeout=5)
            took = time.monotonic() - started
        assert end.event == "end"
        assert "grant" in end.json["reason"]
        assert took < 1.0


class TestAudit:
    def test_one_row_per_connection_and_per_batch(self, live: Live) -> None:
        with subscribe(live.stream_url(), live.key.basic) as stream:
            live.post(*[marked(n, Tlp.GREEN) for n in range(3)])  # batches of two: two batches
            stream.objects(3)
        deadline = time.monotonic() + 10
        while True:
            with live.sessions() as session:
                rows = (
                    session.execute(
                        # This test's collection: a row of an earlier test's stream may land late.
                        select(AuditEvent)
                        .where(
                            AuditEvent.route == "/api/v1/collections/{collection_id}/stream",
                            AuditEvent.collection_id == live.collection,
                        )
                        .order_by(AuditEvent.id)
                    )
                    .scalars()
                    .all()
                )
            if len(rows) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        batches = [r for r in rows if r.detail == "stream batch"]
        connections = [r for r in rows if r.detail != "stream batch"]
        assert [r.object_count for r in batches] == [2, 1]
        assert all(r.date_added_first is not None and r.date_added_last is not None for r in batches)
        assert len(connections) == 1
        assert connections[0].object_count == 3


class TestQuota:
    def test_each_batch_is_charged_as_sent_and_the_stream_ends_when_the_quota_is_used_up(self, live: Live) -> None:
        reader = live.add_key("quota-reader", read=[live.collection])
        with session_scope(live.sessions) as session:
            admin.update_principal(session, name="quota-reader", requests_per_minute=0, objects_per_day=3)
        with subscribe(live.stream_url(), reader.basic) as stream:
            live.post(marked(1, Tlp.GREEN), marked(2, Tlp.GREEN))
            first = stream.next()
            assert len(first.objects) == 2
            assert charged(live, reader.key_id) == 2  # charged with the batch, not when the stream closes
            live.post(marked(3, Tlp.GREEN), marked(4, Tlp.GREEN))
            second = stream.next()
            assert [o["name"] for o in second.objects] == ["Residential proxy exit 3"]  # what the quota had left
            end = stream.next()
            assert end.event == "end"
            assert "quota" in end.json["reason"]
        assert charged(live, reader.key_id) == 3  # the connection's close charges nothing again
        refused = httpx.get(live.stream_url(), headers=reader.basic)
        assert refused.status_code == 429


def charged(live: Live, key_id: str, timeout: float = 5.0) -> int:
    """The key's objects-per-day count, once it has settled (the charge runs beside the delivery)."""
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        with live.sessions() as session:
            day = int(datetime.now(UTC).timestamp() // 86_400)
            count = counters.peek(session, key_id=key_id, scope=OBJECTS_SCOPE, window_no=day)
        if count == last or time.monotonic() > deadline:
            return count
        last = count
        time.sleep(0.3)
