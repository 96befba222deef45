"""A small SSE client for the tests (real HTTP, line by line, as any EventSource reads a stream)."""

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    event: str
    id: str | None
    data: str

    @property
    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def objects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.json["objects"] if self.event == "objects" else []
        return found


def parse(lines: Iterator[str]) -> Iterator[Event]:
    fields: dict[str, list[str]] = {}
    for line in lines:
        if line == "":
            if "data" in fields or "event" in fields:
                yield Event(
                    (fields.get("event") or ["message"])[-1],
                    (fields.get("id") or [None])[-1],
                    "\n".join(fields.get("data", [])),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)


@dataclass
class Subscription:
    """A stream read on a thread; events arrive in ``events`` (a queue)."""

    response: httpx.Response | None = None
    events: "queue.Queue[Event | None]" = field(default_factory=queue.Queue)
    status: int | None = None
    error: BaseException | None = None

    def next(self, timeout: float = 10.0, *, skip_heartbeats: bool = True) -> Event:
        """The next event within ``timeout`` seconds (``queue.Empty`` otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if item is None:
                raise EOFError("the stream ended")
            if skip_heartbeats and item.event == "heartbeat":
                continue
            return item

    def objects(self, count: int, timeout: float = 10.0) -> tuple[list[dict[str, Any]], str | None]:
        """Objects until ``count`` arrived, and the id of the last event that carried some."""
        found: list[dict[str, Any]] = []
        last = None
        while len(found) < count:
            event = self.next(timeout)
            assert event.event == "objects", event
            found.extend(event.objects)
            last = event.id
        return found, last


@contextmanager
def subscribe(url: str, headers: dict[str, str], *, params: dict[str, str] | None = None) -> Iterator[Subscription]:
    subscription = Subscription()
    opened = threading.Event()
    client = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))

    def read() -> None:
        try:
            with client.stream("GET", url, headers=headers, params=params) as response:
                subscription.response = response
                subscription.status = response.status_code
                opened.set()
                if response.status_code != 200:
                    response.read()
                    return
                for event in parse(response.iter_lines()):
                    subscription.events.put(event)
        except BaseException as exc:  # closed by the test, or a broken connection: the test decides
            subscription.error = exc
        finally:
            opened.set()
            subscription.events.put(None)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    opened.wait(30)
    try:
        yield subscription
    finally:
        # Closing the client does not wake a thread blocked reading the socket; shutting the socket down does.
        if subscription.response is not None:
            stream = subscription.response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        client.close()
        thread.join(10)
