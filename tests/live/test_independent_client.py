"""The stream read by a client that shares nothing with this project: a raw socket speaking HTTP/1.1 (chunked
transfer decoded by hand) and the WHATWG HTML "event stream interpretation" algorithm, as a browser's
EventSource runs it (any of CR, LF or CRLF ends a line, a leading BOM is dropped, the last event id persists
across events and is what a reconnection sends as ``Last-Event-ID``). No httpx, no ``tests.live.sse``."""

import base64
import codecs
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from indicator_exchange.stix.markings import Tlp
from tests.fixtures.factories import make_indicator
from tests.live.conftest import Live


@dataclass
class Dispatched:
    type: str
    data: str
    last_event_id: str

    @property
    def objects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = orjson.loads(self.data)["objects"] if self.type == "objects" else []
        return found


class RawEventSource:
    """One connection of an EventSource, by hand."""

    def __init__(self, url: str, authorization: str, last_event_id: str = "") -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=15)
        self.last_event_id = last_event_id
        head = [
            f"GET {parts.path} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Accept: text/event-stream",
            "Cache-Control: no-cache",
            f"Authorization: {authorization}",
        ]
        if last_event_id:
            head.append(f"Last-Event-ID: {last_event_id}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        self.buffer = b""
        status_line, *header_lines = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(status_line.split(" ")[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}

    def close(self) -> None:
        self.sock.close()

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buffer += chunk

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._recv()
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def _body(self) -> Iterator[bytes]:
        """The body, chunked transfer-coding removed (RFC 9112 §7.1)."""
        assert self.headers.get("transfer-encoding", "").lower() == "chunked", self.headers
        while True:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                return
            while len(self.buffer) < size + 2:
                self._recv()
            data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
            yield data

    def events(self) -> Iterator[Dispatched]:
        """WHATWG HTML §9.2.6: lines, fields, dispatch on a blank line."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        pending, first = "", True
        data, event_type, id_buffer = "", "", self.last_event_id
        for chunk in self._body():
            pending += decoder.decode(chunk)
            if first and pending:
                pending, first = pending.removeprefix("\ufeff"), False
            while True:
                ends = [i for i in (pending.find("\r"), pending.find("\n")) if i >= 0]
                if not ends:
                    break
                end = min(ends)
                if pending[end] == "\r" and end == len(pending) - 1:
                    break  # a CR at the end may be the first half of a CRLF
                width = 2 if pending[end : end + 2] == "\r\n" else 1
                line, pending = pending[:end], pending[end + width :]
                if line == "":
                    self.last_event_id = id_buffer
                    if data:
                        yield Dispatched(event_type or "message", data.removesuffix("\n"), self.last_event_id)
                    data, event_type = "", ""
                    continue
                if line.startswith(":"):
                    continue
                name, colon, value = line.partition(":")
                if colon and value.startswith(" "):
                    value = value[1:]
                if name == "event":
                    event_type = value
                elif name == "data":
                    data += value + "\n"
                elif name == "id" and "\0" not in value:
                    id_buffer = value

    def objects(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Objects until ``count`` have come, skipping heartbeats; fails on an ``end`` or after ``timeout``."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        for event in self.events():
            assert event.type in ("objects", "heartbeat"), event
            found.extend(event.objects)
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"only {len(found)} of {count} objects in {timeout} s"
        raise EOFError("the stream ended")

    def quiet_for(self, seconds: float) -> list[dict[str, Any]]:
        """Every object that arrives in ``seconds`` (heartbeats keep the loop turning)."""
        deadline = time.monotonic() + seconds
        found: list[dict[str, Any]] = []
        for event in self.events():
            found.extend(event.objects)
            if time.monotonic() >= deadline:
                return found
        return found


def basic(key_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode()


class TestIndependentClient:
    def test_reads_resumes_with_last_event_id_and_sees_only_its_clearance(self, live: Live) -> None:
        green = live.add_key("independent-green", clearance="green", read=[live.collection])
        auth = basic(green.key_id, green.secret)
        live.post(make_indicator(1, tlp=Tlp.GREEN), make_indicator(2, tlp=Tlp.AMBER), make_indicator(3, tlp=Tlp.GREEN))
        source = RawEventSource(live.stream_url(), auth)
        try:
            assert source.status == 200
            assert source.headers["content-type"].startswith("text/event-stream")
            first = source.objects(2)
            assert [o["name"] for o in first] == ["Residential proxy exit 1", "Residential proxy exit 3"]
            live.post(make_indicator(4, tlp=Tlp.RED), make_indicator(5, tlp=Tlp.GREEN))
            assert [o["name"] for o in source.objects(1)] == ["Residential proxy exit 5"]
            resume_at = source.last_event_id
        finally:
            source.close()
        assert resume_at

        # Committed while the client is away: a red, a green, an amber and a second version of a seen object.
        live.post(
            make_indicator(6, tlp=Tlp.RED),
            make_indicator(7, tlp=Tlp.GREEN),
            make_indicator(8, tlp=Tlp.AMBER),
            make_indicator(1, tlp=Tlp.GREEN, modified="2026-03-01T00:00:00.000Z"),
        )
        again = RawEventSource(live.stream_url(), auth, last_event_id=resume_at)
        try:
            assert again.status == 200
            resumed = again.objects(2)
            resumed += again.quiet_for(2.5)  # two heartbeats more: nothing else is owed
        finally:
            again.close()
        assert [(o["name"], o["modified"]) for o in resumed] == [
            ("Residential proxy exit 7", "2026-02-24T12:00:00.000Z"),
            ("Residential proxy exit 1", "2026-03-01T00:00:00.000Z"),
        ]
        markings = {ref for o in first + resumed for ref in o["object_marking_refs"]}
        assert markings == {Tlp.GREEN.marking_id}

    def test_a_foreign_last_event_id_is_refused(self, live: Live) -> None:
        source = RawEventSource(live.stream_url(), basic(live.key.key_id, live.key.secret), last_event_id="nope")
        try:
            assert source.status == 400
        finally:
            source.close()
