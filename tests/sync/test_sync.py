"""Pulling partner feeds: from a live instance of this server, from the OASIS reference server (medallion), and
from misbehaving servers (timestamp ties, loops, failures, no `next`, invalid objects). Nothing is lost or
stored twice, across pages and restarts."""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.store.models import ObjectVersion, SyncRejection
from indicator_exchange.sync import service as sync
from indicator_exchange.sync.taxii_client import RetryPolicy
from tests.conftest import make_test_database
from tests.fixtures.factories import make_collection, make_indicator
from tests.fixtures.live_server import LiveServer, free_port, live_server

TAXII = "application/taxii+json;version=2.1"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def local_target(session: Session) -> uuid.UUID:
    collection = make_collection(session, root="local", title="pulled")
    session.commit()
    return collection


def add_source(
    sessions: sessionmaker[Session], url: str, target: uuid.UUID, *, page_size: int = 10, credentials: str | None = None
) -> None:
    with sessions() as session:
        sync.create_source(
            session,
            name="partner",
            url=url,
            api_root=None,
            remote_collection="c",
            local_collection=target,
            credentials_ref=credentials,
            page_size=page_size,
        )
        source = sync.sources.get_source(session, "partner")
        assert source is not None
        source.collection_url = url  # the tests point straight at a collection URL
        session.commit()


def local_versions(session: Session, target: uuid.UUID) -> list[tuple[str, int]]:
    session.rollback()
    rows = session.execute(
        select(ObjectVersion.stix_id, ObjectVersion.version).where(ObjectVersion.collection_id == target)
    ).all()
    session.rollback()
    return sorted((r[0], r[1]) for r in rows)


@pytest.fixture
def remote(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """A second instance of this server (its own SQLite store) with a collection and a partner key."""
    url = make_test_database(pg_admin_url, tmp_path_factory, "sqlite", f"remote-{uuid.uuid4().hex[:6]}")
    with live_server(url) as server:
        server.cli("admin", "api-root", "create", "feeds", "--title", "Partner feeds")
        collection = server.cli_json("admin", "collection", "create", "--api-root", "feeds", "--title", "proxies")
        server.cli("admin", "principal", "create", "us", "--clearance", "red")
        server.cli("admin", "grant", "us", str(collection["id"]), "--read", "--write")
        key = server.cli_json("admin", "key", "create", "us")
        yield server, f"{key['key_id']}:{key['secret']}"


def remote_collection(server: LiveServer) -> str:
    collections = json.loads(server.cli("admin", "collection", "list", "--json"))
    return f"{server.base}/feeds/collections/{collections[0]['id']}/"


def post(server: LiveServer, secret: str, objects: list[dict[str, Any]]) -> None:
    user, password = secret.split(":", 1)
    response = httpx.post(
        f"{remote_collection(server)}objects/",
        json={"objects": objects},
        auth=(user, password),
        headers={"Accept": TAXII, "Content-Type": TAXII},
    )
    assert response.status_code == 202, response.text


class TestFromALiveInstance:
    def test_full_then_incremental_pull(
        self,
        remote: tuple[LiveServer, str],
        sessions: sessionmaker[Session],
        session: Session,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        server, secret = remote
        monkeypatch.setenv("PARTNER_KEY", secret)
        post(server, secret, [make_indicator(i, created_by_ref=None) for i in range(23)])
        target = local_target(session)
        add_source(sessions, remote_collection(server), target, credentials="env:PARTNER_KEY")
        first = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (first.outcome, first.stored, first.pages) == ("ok", 23, 3)
        post(server, secret, [make_indicator(100), make_indicator(3, modified="2026-03-01T00:00:00.000Z")])
        second = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (second.outcome, second.stored) == ("ok", 2)
        stored = local_versions(session, target)
        assert len(stored) == len(set(stored)) == 25
        raw = session.execute(select(ObjectVersion.raw).where(ObjectVersion.stix_id == make_indicator(5)["id"]))
        assert json.loads(raw.scalar_one())["object_marking_refs"] == make_indicator(5)["object_marking_refs"]

    def test_restart_mid_pull_loses_and_duplicates_nothing(
        self,
        remote: tuple[LiveServer, str],
        sessions: sessionmaker[Session],
        session: Session,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        server, secret = remote
        monkeypatch.setenv("PARTNER_KEY", secret)
        post(server, secret, [make_indicator(i) for i in range(30)])
        target = local_target(session)
        add_source(sessions, remote_collection(server), target, page_size=7, credentials="env:PARTNER_KEY")
        stop = threading.Event()
        interrupted = sync.pull(
            sessions, "partner", retry=FAST_RETRY, stop=stop, on_page=lambda r: stop.set() if r.pages == 2 else None
        )
        assert (interrupted.outcome, interrupted.stored) == ("stopped", 14)
        resumed = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert resumed.outcome == "ok"
        stored = local_versions(session, target)
        assert len(stored) == len(set(stored)) == 30


class FakeTaxii(BaseHTTPRequestHandler):
    """A deliberately awkward TAXII server; behaviour chosen by ``server.mode``."""

    def log_message(self, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        server: Any = self.server
        server.requests += 1
        if server.mode == "flaky" and server.requests % 3 == 0:
            self.send_response(500)
            self.end_headers()
            return
        if not urlparse(self.path).path.endswith("/objects/"):
            self._send({"id": "c", "title": "awkward", "can_read": True, "can_write": False, "media_types": []}, [])
            return
        query = parse_qs(urlparse(self.path).query)
        limit = int(query.get("limit", ["10"])[0])
        objects: list[tuple[str, dict[str, Any]]] = server.objects
        if server.mode == "loop":
            page, more, token = objects[:limit], True, "same-token"
        else:
            start = int(query["next"][0]) if "next" in query else 0
            if "added_after" in query and "next" not in query:
                after = query["added_after"][0]
                start = next((i for i, (added, _) in enumerate(objects) if added > after), len(objects))
            page = objects[start : start + limit]
            more = start + limit < len(objects)
            token = str(start + limit) if more and server.mode != "no-next" else None
        body: dict[str, Any] = {"more": more}
        if token:
            body["next"] = token
        if page:
            body["objects"] = [obj for _, obj in page]
        self._send(body, page)

    def _send(self, body: dict[str, Any], page: list[tuple[str, dict[str, Any]]]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", TAXII)
        if page:
            self.send_header("X-TAXII-Date-Added-First", page[0][0])
            self.send_header("X-TAXII-Date-Added-Last", page[-1][0])
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeTaxii)
    server.mode, server.requests = "normal", 0
    server.objects = [(f"2026-11-01T00:00:{i // 4:02d}.000000Z", make_indicator(i)) for i in range(24)]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def fake_url(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/api1/collections/c/"


class TestAwkwardServers:
    @pytest.mark.parametrize("mode", ["normal", "no-next", "flaky"])
    def test_ties_across_page_boundaries_lose_nothing(
        self, fake: Any, mode: str, sessions: sessionmaker[Session], session: Session
    ) -> None:
        fake.mode = mode  # four objects share each date_added; pages of 5 split every tie
        target = local_target(session)
        add_source(sessions, fake_url(fake), target, page_size=5)
        result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert result.outcome == "ok", result.summary()
        stored = local_versions(session, target)
        assert len(stored) == len(set(stored)) == 24
        if mode == "flaky":
            assert result.retries > 0
        again = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert again.stored == 0
        assert len(local_versions(session, target)) == 24

    def test_a_server_that_loops_is_stopped(self, fake: Any, sessions: sessionmaker[Session], session: Session) -> None:
        fake.mode = "loop"
        target = local_target(session)
        add_source(sessions, fake_url(fake), target, page_size=5)
        result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert result.outcome == "loop-detected"
        assert fake.requests <= 3
        assert len(local_versions(session, target)) == 5

    def test_invalid_objects_are_recorded_not_stored(
        self, fake: Any, sessions: sessionmaker[Session], session: Session
    ) -> None:
        fake.objects[3] = (fake.objects[3][0], {"type": "indicator", "id": "indicator--broken"})
        target = local_target(session)
        add_source(sessions, fake_url(fake), target, page_size=50)
        result = sync.pull(sessions, "partner", retry=FAST_RETRY)
        assert (result.stored, result.rejected) == (23, 1)
        session.rollback()
        reasons = session.execute(select(SyncRejection.reason)).scalars().all()
        assert len(reasons) == 1
        assert "UUID" in reasons[0]


class TestFromMedallion:
    def test_full_and_incremental_pull_from_the_reference_server(
        self, tmp_path: Path, sessions: sessionmaker[Session], session: Session
    ) -> None:
        collection = str(uuid.uuid4())
        data = {
            "/discovery": {"title": "ref", "api_roots": ["/api1/"]},
            "api1": {
                "information": {"title": "api1", "versions": [TAXII], "max_content_length": 10_000_000},
                "status": [],
                "collections": [
                    {
                        "id": collection,
                        "title": "c",
                        "can_read": True,
                        "can_write": True,
                        "media_types": [],
                        "objects": [],
                        "manifest": [],
                    }
                ],
            },
        }
        (tmp_path / "data.json").write_text(json.dumps(data))
        config = {
            "backend": {
                "module": "medallion.backends.memory_backend",
                "module_class": "MemoryBackend",
                "filename": str(tmp_path / "data.json"),
            },
            "users": {"u": "p"},
            "taxii": {"max_page_size": 100},
        }
        (tmp_path / "config.json").write_text(json.dumps(config))
        port = free_port()
        # medallion's Flask app is a module global that can be set up once per process: run it in its own.
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "medallion"), "--port", str(port), str(tmp_path / "config.json")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/taxii2/", auth=("u", "p"), headers={"Accept": TAXII}, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        try:
            url = f"http://127.0.0.1:{port}/api1/collections/{collection}/"
            post_headers = {"Accept": TAXII, "Content-Type": TAXII}
            httpx.post(
                f"{url}objects/",
                json={"objects": [make_indicator(i) for i in range(12)]},
                auth=("u", "p"),
                headers=post_headers,
            )
            target = local_target(session)
            add_source(sessions, url, target, page_size=5, credentials="env:MEDALLION_KEY")
            os.environ["MEDALLION_KEY"] = "u:p"
            first = sync.pull(sessions, "partner", retry=FAST_RETRY)
            assert (first.outcome, first.stored) == ("ok", 12), first.summary()
            httpx.post(f"{url}objects/", json={"objects": [make_indicator(50)]}, auth=("u", "p"), headers=post_headers)
            second = sync.pull(sessions, "partner", retry=FAST_RETRY)
            assert second.stored == 1
            assert len(local_versions(session, target)) == 13
        finally:
            process.terminate()
            process.wait(10)
            os.environ.pop("MEDALLION_KEY", None)


def test_credentials_in_clear_are_refused(sessions: sessionmaker[Session], session: Session) -> None:
    target = local_target(session)
    with sessions() as s, pytest.raises(sync.BadRequest):
        sync.create_source(
            s,
            name="x",
            url="http://127.0.0.1:1/api1/collections/c/",
            api_root=None,
            remote_collection="c",
            local_collection=target,
            credentials_ref="user:password",
        )
