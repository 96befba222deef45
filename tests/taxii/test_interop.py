"""Interoperability with real TAXII clients against a live `indicator-exchange serve` on loopback, and the
commit-order guarantee of date_added under concurrent writers."""

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from stix2 import Filter, TAXIICollectionSink, TAXIICollectionSource
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from tests.conftest import empty_database
from tests.fixtures.factories import make_indicator
from tests.fixtures.live_server import LiveServer, live_server

TAXII = "application/taxii+json;version=2.1"


@pytest.fixture
def live(db_url: str) -> Iterator[tuple[LiveServer, str, tuple[str, str]]]:
    """A live server with one collection and an admin key; yields (server, collection URL, (key id, secret))."""
    empty_database(db_url)
    with live_server(db_url) as server:
        server.cli("admin", "api-root", "create", "api1", "--title", "Interop")
        collection = server.cli_json(
            "admin", "collection", "create", "--api-root", "api1", "--title", "shared", "--default-tlp", "green"
        )
        server.cli("admin", "principal", "create", "partner", "--clearance", "amber")
        server.cli("admin", "grant", "partner", str(collection["id"]), "--read", "--write")
        key = server.cli_json("admin", "key", "create", "partner")
        yield server, f"{server.base}/api1/collections/{collection['id']}/", (str(key["key_id"]), str(key["secret"]))


class TestTaxii2Client:
    def test_discovery_collections_paging_add_and_status(self, live: tuple[LiveServer, str, tuple[str, str]]) -> None:
        server, url, (user, password) = live
        discovery = Server(f"{server.base}/taxii2/", user=user, password=password)
        assert [root.url for root in discovery.api_roots] == [f"{server.base}/api1/"]
        root = ApiRoot(f"{server.base}/api1/", user=user, password=password)
        assert [c.title for c in root.collections] == ["shared"]
        collection = Collection(url, user=user, password=password)
        status = collection.add_objects({"objects": [make_indicator(i) for i in range(25)]})
        assert (status.status, status.success_count, status.failure_count) == ("complete", 25, 0)
        pages = list(as_pages(collection.get_objects, per_request=10))
        assert [len(p.get("objects", [])) for p in pages] == [10, 10, 5]
        ids = {o["id"] for p in pages for o in p["objects"]}
        assert ids == {make_indicator(i)["id"] for i in range(25)}
        one = collection.get_object(make_indicator(3)["id"])
        assert one["objects"][0]["id"] == make_indicator(3)["id"]
        manifest = collection.get_manifest()
        assert len(manifest["objects"]) == 25
        versions = collection.object_versions(make_indicator(3)["id"])
        assert versions["versions"] == ["2026-02-24T12:00:00.000Z"]


class TestStix2DataSource:
    def test_sink_then_source_queries_with_filters(self, live: tuple[LiveServer, str, tuple[str, str]]) -> None:
        _, url, (user, password) = live
        collection = Collection(url, user=user, password=password)
        sink = TAXIICollectionSink(collection)
        sink.add([make_indicator(i) for i in range(4)])
        source = TAXIICollectionSource(collection)
        assert source.get(make_indicator(2)["id"])["name"] == "Residential proxy exit 2"
        found = source.query([Filter("type", "=", "indicator")])
        assert len(found) == 4
        narrowed = source.query([Filter("type", "=", "indicator"), Filter("id", "=", make_indicator(1)["id"])])
        assert [o["id"] for o in narrowed] == [make_indicator(1)["id"]]


class TestConcurrentWriters:
    def test_date_added_is_unique_increasing_and_a_poller_misses_nothing(
        self, live: tuple[LiveServer, str, tuple[str, str]]
    ) -> None:
        _, url, auth = live
        writers, per_writer, batch = 4, 60, 5
        errors: list[str] = []

        def write(worker: int) -> None:
            with httpx.Client(auth=auth, headers={"Accept": TAXII, "Content-Type": TAXII}, timeout=60) as client:
                for start in range(0, per_writer, batch):
                    objects = [make_indicator(worker * 1000 + start + i) for i in range(batch)]
                    response = client.post(f"{url}objects/", json={"objects": objects})
                    if response.status_code != 202:
                        errors.append(response.text)

        seen: list[str] = []
        dates: list[str] = []
        done = threading.Event()

        def poll() -> None:
            mark: str | None = None
            with httpx.Client(auth=auth, headers={"Accept": TAXII}, timeout=60) as client:
                while True:
                    finished = done.is_set()
                    params: dict[str, Any] = {"limit": 7, **({"added_after": mark} if mark else {})}
                    response = client.get(f"{url}manifest/", params=params)
                    records = response.json().get("objects", [])
                    seen.extend(r["id"] for r in records)
                    dates.extend(r["date_added"] for r in records)
                    if records:
                        mark = response.headers["X-TAXII-Date-Added-Last"]
                    elif finished:
                        return

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        poller = threading.Thread(target=poll)
        poller.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        poller.join(120)
        assert not errors
        expected = {make_indicator(w * 1000 + i)["id"] for w in range(writers) for i in range(per_writer)}
        assert len(seen) == len(expected)
        assert set(seen) == expected
        assert dates == sorted(dates)
        assert len(set(dates)) == len(dates)


def test_uuid_sanity() -> None:
    assert uuid.UUID(make_indicator(1)["id"].split("--")[1]).version == 5  # type: ignore[union-attr]
