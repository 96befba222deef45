"""The live stream (GET /api/v1/collections/{id}/stream): delivery, resume from every point, restarts,
another instance, concurrent writers."""

import queue
import threading
from typing import Any

import httpx
import pytest

from indicator_exchange.stix.objects import format_timestamp_us
from indicator_exchange.taxii.filters import decode_cursor
from tests.fixtures.live_server import live_server
from tests.live.conftest import LIVE_ENV, Live, indicators
from tests.live.sse import Event, parse, subscribe


def names(objects: list[dict[str, Any]]) -> list[str]:
    return [str(obj["name"]) for obj in objects]


def expected(start: int, count: int) -> list[str]:
    return names(indicators(start, count))


class TestStream:
    def test_delivers_commits_as_they_happen(self, live: Live) -> None:
        with subscribe(live.stream_url(), live.key.basic) as stream:
            assert stream.status == 200
            assert stream.response is not None
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            first = stream.next(skip_heartbeats=False)
            assert first.event == "heartbeat"
            assert first.id is not None
            live.post(*indicators(0, 3))
            received, last = stream.objects(3)
        assert names(received) == expected(0, 3)
        assert last is not None
        assert decode_cursor(last).position > 0

    def test_resumes_with_last_event_id_and_added_after(self, live: Live) -> None:
        live.post(*indicators(0, 3))
        with subscribe(live.stream_url(), live.key.basic) as stream:
            _received, last = stream.objects(3)
        live.post(*indicators(3, 2))
        with subscribe(live.stream_url(), {**live.key.basic, "Last-Event-ID": str(last)}) as stream:
            again, _ = stream.objects(2)
            with pytest.raises(queue.Empty):
                stream.next(timeout=2.5)  # heartbeats only: nothing else
        assert names(again) == expected(3, 2)
        # The heartbeat's position after the first read, as a timestamp: the same remainder.
        position = decode_cursor(str(last)).position
        with subscribe(live.stream_url(), live.key.basic, params={"added_after": format_timestamp_us(position)}) as s:
            by_time, _ = s.objects(2)
        assert names(by_time) == expected(3, 2)

    def test_an_event_id_is_a_next_token_of_an_all_versions_poll(self, live: Live) -> None:
        live.post(*indicators(0, 4))
        with subscribe(live.stream_url(), live.key.basic) as stream:
            stream.objects(2)  # batches of two (IX_LIVE_BATCH_SIZE)
            first = stream.next()
        answer = httpx.get(
            live.objects_url(), params={"match[version]": "all", "next": str(first.id)}, headers=live.key.basic
        )
        assert answer.status_code == 200, answer.text
        assert "objects" not in answer.json()  # the token is after the fourth: nothing more

    def test_resume_after_a_drop_at_every_point(self, live: Live) -> None:
        """Read the raw stream once, cut it at every event boundary and inside every event, and resume
        from the last complete event each cut leaves: every object exactly once, in order."""
        live.post(*indicators(0, 7))
        raw = b""
        with httpx.stream("GET", live.stream_url(), headers=live.key.basic, timeout=30) as response:
            for chunk in response.iter_raw():
                raw += chunk
                if raw.count(b"event: objects") >= 4:  # 7 objects in batches of two
                    break
        text = raw.decode()
        boundaries = [i + 2 for i in range(len(text)) if text.startswith("\n\n", i)]
        cuts = sorted({0, *boundaries, *(b - 5 for b in boundaries if b > 5), *(b + 7 for b in boundaries)})
        for cut in cuts:
            complete = text[:cut].rsplit("\n\n", 1)[0] if "\n\n" in text[:cut] else ""
            events = list(parse(iter((complete + "\n\n").split("\n")))) if complete else []
            seen = [o for e in events for o in e.objects]
            last_id = next((e.id for e in reversed(events) if e.id), None)
            headers = {**live.key.basic, **({"Last-Event-ID": last_id} if last_id else {})}
            with subscribe(live.stream_url(), headers) as stream:
                rest, _ = stream.objects(7 - len(seen)) if len(seen) < 7 else ([], None)
            assert names(seen + rest) == expected(0, 7), f"cut at {cut}"

    def test_a_restarted_server_and_another_instance_resume_exactly(self, live: Live) -> None:
        live.post(*indicators(0, 2))
        with subscribe(live.stream_url(), live.key.basic) as stream:
            _, last = stream.objects(2)
        live.post(*indicators(2, 2))
        # Another instance (another process: another worker) of the same store resumes the same position, and
        # hears commits made through the first instance.
        with live_server(live.url, env=LIVE_ENV) as other:
            url = live.stream_url().replace(live.server.base, other.base)
            with subscribe(url, {**live.key.basic, "Last-Event-ID": str(last)}) as stream:
                rest, last = stream.objects(2)
                assert names(rest) == expected(2, 2)
                live.post(*indicators(4, 1))  # committed through the first instance
                woken, last = stream.objects(1, timeout=5)
                assert names(woken) == expected(4, 1)
        live.post(*indicators(5, 1))
        with live_server(live.url, env=LIVE_ENV) as restarted:
            url = live.stream_url().replace(live.server.base, restarted.base)
            with subscribe(url, {**live.key.basic, "Last-Event-ID": str(last)}) as stream:
                after, _ = stream.objects(1)
        assert names(after) == expected(5, 1)

    def test_concurrent_writers_while_the_stream_reads(self, live: Live) -> None:
        writers, each = 4, 10
        with subscribe(live.stream_url(), live.key.basic) as stream:
            stream.next(skip_heartbeats=False)

            def write(w: int) -> None:
                for n in range(each):
                    live.post(*indicators(1000 * w + n, 1))

            threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            events: list[Event] = []
            total = 0
            while total < writers * each:
                event = stream.next(timeout=15)
                events.append(event)
                total += len(event.objects)
        got = [o["name"] for e in events for o in e.objects]
        assert len(got) == len(set(got)) == writers * each
        positions = [decode_cursor(str(e.id)).position for e in events]
        assert positions == sorted(positions)
        assert len(set(positions)) == len(positions)

    def test_refuses_a_foreign_or_broken_last_event_id(self, live: Live) -> None:
        answer = httpx.get(live.stream_url(), headers={**live.key.basic, "Last-Event-ID": "not-a-token"})
        assert answer.status_code == 400
        assert answer.json()["error"]
