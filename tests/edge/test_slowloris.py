"""Slow and idle connections on a live `serve`: a request head that does not complete in time and a body that
stalls are closed; at IX_MAX_CONNECTIONS idle connections make room for new ones; normal requests are served
throughout. The bounded flood probe is `slow` (make test-slow)."""

import re
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.live_server import LiveServer, live_server

# Long enough that a request served "while they wait" is not a race against the closing on a loaded machine;
# nothing here asserts how fast a request is answered, only whether it is answered and in what order.
HEAD_TIMEOUT = 3.0
BODY_TIMEOUT = 3.0
MAX_BODY = 1_000_000
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture(scope="module")
def server(sqlite_url: str) -> Iterator[LiveServer]:
    """One server for the module: these tests write nothing (the SQLite store only has to exist)."""
    env = {
        "IX_HEADER_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "IX_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "IX_MAX_CONNECTIONS": "50",
        "IX_MAX_CONTENT_LENGTH": str(MAX_BODY),
    }
    with live_server(sqlite_url, env=env) as live:
        yield live


def _address(server: LiveServer) -> tuple[str, int]:
    parts = urlsplit(server.base)
    return str(parts.hostname), int(parts.port or 80)


def _open(server: LiveServer, count: int, first: bytes = PARTIAL_HEAD) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(_address(server), timeout=5)
        sock.sendall(first)
        sockets.append(sock)
    return sockets


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (whatever it may have answered first)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if sock.recv(4096) == b"":
                return True
    except (TimeoutError, ConnectionResetError):
        return False
    return False


def _healthy(server: LiveServer) -> bool:
    return httpx.get(f"{server.base}/healthz", timeout=10).status_code == 200


def _still_open(sock: socket.socket) -> bool:
    return not _closed_within(sock, 0.01)


class TestSlowloris:
    def test_incomplete_heads_are_closed_after_the_timeout(self, server: LiveServer) -> None:
        sockets = _open(server, 20)
        try:
            assert _healthy(server)
            assert all(_still_open(sock) for sock in sockets)  # served while they wait, not after they were closed
            started = time.monotonic()
            assert all(_closed_within(sock, HEAD_TIMEOUT + 3) for sock in sockets)
            assert time.monotonic() - started < HEAD_TIMEOUT + 3
        finally:
            for sock in sockets:
                sock.close()

    def test_a_head_trickling_in_is_closed_too(self, server: LiveServer) -> None:
        (sock,) = _open(server, 1, b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        try:
            sock.settimeout(0.2)
            closed = False
            while time.monotonic() - started < HEAD_TIMEOUT + 3 and not closed:
                try:
                    sock.sendall(b"X-A: b\r\n")  # a header line every 0.2 s: never complete
                    closed = sock.recv(4096) == b""
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
            assert closed
            assert time.monotonic() - started < HEAD_TIMEOUT + 2
        finally:
            sock.close()

    def test_an_idle_connection_that_sends_nothing_is_closed(self, server: LiveServer) -> None:
        (sock,) = _open(server, 1, b"")
        try:
            assert _closed_within(sock, HEAD_TIMEOUT + 3)
        finally:
            sock.close()

    def test_a_stalled_body_is_closed(self, server: LiveServer) -> None:
        head = b"POST /api1/collections/x/objects/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{"
        (sock,) = _open(server, 1, head)
        try:
            assert _closed_within(sock, BODY_TIMEOUT + 3)
            assert _healthy(server)
        finally:
            sock.close()
        assert 'ix_connections_closed_total{reason="body-timeout"} 1.0' in httpx.get(f"{server.base}/metrics").text

    def test_at_the_connection_limit_idle_connections_make_room(self, server: LiveServer) -> None:
        sockets = _open(server, 50)  # every slot taken by an incomplete head
        try:
            for _ in range(5):
                assert _healthy(server)  # each closes the oldest idle connection
        finally:
            for sock in sockets:
                sock.close()

    def test_an_oversized_head_is_431(self, server: LiveServer) -> None:
        (sock,) = _open(server, 1, PARTIAL_HEAD + b"x" * 70_000)
        try:
            sock.settimeout(5)
            assert sock.recv(4096).startswith(b"HTTP/1.1 431 ")
            assert _closed_within(sock, 2)
        finally:
            sock.close()

    @pytest.mark.parametrize(
        ("target", "media_type", "key"),
        [
            (b"/api1/collections/", b"application/taxii+json;version=2.1", b'"title":'),
            (b"/taxii2/", b"application/taxii+json;version=2.1", b'"title":'),
            (b"/api/v1/admin/principals", b"application/json", b'"error":'),
        ],
    )
    @pytest.mark.parametrize("oversized", [False, True], ids=["unparsable", "oversized"])
    def test_an_answer_of_the_server_itself_is_in_the_paths_error_body(
        self, server: LiveServer, target: bytes, media_type: bytes, key: bytes, oversized: bool
    ) -> None:
        # A header httptools cannot parse (a control character) drew uvicorn's plain-text 400, and a head too
        # large a plain-text 431: TAXII clients are owed a TAXII error resource, the API its error body.
        bad = b"X-Big: " + b"y" * 70_000 + b"\r\n" if oversized else b"Authorization: Bearer ixk_\x01.x\r\n"
        sock = socket.create_connection(_address(server), timeout=10)
        try:
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + bad + b"\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        finally:
            sock.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 " if oversized else b"HTTP/1.1 400 "), answer[:300]
        assert b"content-type: " + media_type + b"\r\n" in head, head
        assert body.startswith(b"{" + key), body

    def test_a_head_just_under_the_limit_with_a_body_is_served(self, server: LiveServer) -> None:
        answer = httpx.get(f"{server.base}/healthz", headers={"X-Big": "y" * 60_000}, timeout=5)
        assert answer.status_code == 200

    def test_a_body_left_unread_by_an_early_answer_is_not_taken_for_a_head(self, server: LiveServer) -> None:
        # The app answers (here 405) before reading a 200 kB body: the rest of that body is still this request's,
        # not the head of a next one; counted as a head it drew a second answer, a 431, and a reset connection.
        body = b"x" * 200_000
        first = b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body)
        second = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        sock = socket.create_connection(_address(server), timeout=10)
        try:
            sock.sendall(first)
            time.sleep(0.5)  # the early answer is sent before the body arrives
            sock.sendall(body + second)
            answers = b""
            while chunk := sock.recv(65536):
                answers += chunk
        finally:
            sock.close()
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answers)
        assert statuses == [b"405", b"200"], answers[:2000]

    def test_a_body_left_unread_is_thrown_away_only_up_to_the_body_limit(self, server: LiveServer) -> None:
        # After an early answer the server reads the rest of the body to throw it away, but not without end.
        sock = socket.create_connection(_address(server), timeout=10)
        sent = 0
        try:
            sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n")
            sock.settimeout(10)
            assert re.match(rb"HTTP/1\.1 405 ", sock.recv(4096))
            closed = False
            while sent < 40 * MAX_BODY and not closed:
                try:
                    sock.sendall(b"x" * 65536)
                    sent += 65536
                except (BrokenPipeError, ConnectionResetError):  # the server has closed
                    closed = True
        finally:
            sock.close()
        assert closed, f"{sent} bytes thrown away and the connection still open"

    def test_a_complete_request_on_a_kept_alive_connection_still_works(self, server: LiveServer) -> None:
        with httpx.Client(base_url=server.base, timeout=5) as client:
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
                time.sleep(0.3)


@pytest.mark.slow
def test_flood_probe(server: LiveServer) -> None:
    """1,000 connections with never-finished heads against a worker capped at 50: normal requests keep being
    answered, nothing answers 5xx but the documented 503 of a full server, and every slow connection ends."""
    sockets: list[socket.socket] = []
    statuses: list[int] = []
    try:
        for batch in range(20):
            sockets.extend(_open(server, 50))
            answer = httpx.get(f"{server.base}/healthz", timeout=5)
            statuses.append(answer.status_code)
            assert batch < 19 or answer.status_code == 200
        assert set(statuses) <= {200, 503}
        assert statuses.count(200) >= 15
        time.sleep(HEAD_TIMEOUT + 1)
        assert all(_closed_within(sock, 2) for sock in sockets)
        assert _healthy(server)
    finally:
        for sock in sockets:
            sock.close()
