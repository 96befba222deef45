"""Read replicas against a real streaming replica (``pg_basebackup -R`` of a throwaway primary): polls read
there, and never answer staler than the primary would (a replica paused behind a write, a delete, a newer
version, a removed grant, a changed default TLP or a revoked key does not answer the poll; writes to other
collections do not hold it up); read-your-writes through ``X-IX-LSN``; read-ahead reads on the replica and
stays exact; a replica that lags too far or stops (mid-poll) is out of rotation and back in when healthy."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY
from sqlalchemy import text
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.reports import export
from indicator_exchange.services import services_of
from indicator_exchange.store.engine import database_unavailable, make_engine, make_sessionmaker
from indicator_exchange.store.replicas import LSN_HEADER
from tests.conftest import make_settings
from tests.fixtures.factories import Key, envelope, make_indicator, make_key
from tests.fixtures.live_server import live_server
from tests.fixtures.scale import wait_replayed
from tests.live.sse import subscribe
from tests.scale.conftest import Feed, Pair, make_feed

pytestmark = pytest.mark.timeout(300)


def _replay(pair: Pair, *, paused: bool) -> None:
    with psycopg.connect(pair.replica_url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


@pytest.fixture
def feed(pair: Pair, request: pytest.FixtureRequest) -> Feed:
    engine = make_engine(pair.primary_url, pool_size=1)
    with make_sessionmaker(engine)() as session:
        made = make_feed(session, request.node.name[:40])
    engine.dispose()
    wait_replayed(pair.primary_url, pair.replica_url)
    return made


@contextmanager
def _worker(pair: Pair, *, max_lag: float, wait: float) -> Iterator[TestClient]:
    """A worker reading from the pair's replica (replay running at start and after)."""
    _replay(pair, paused=False)
    settings = make_settings(
        pair.primary_url,
        read_replica_urls=pair.replica_url,
        replica_max_lag_seconds=max_lag,
        replica_wait_seconds=wait,
        replica_check_seconds=0.2,
        statistics_interval_seconds=0,
    )
    with TestClient(create_app(settings)) as made:
        yield made
    _replay(pair, paused=False)


@pytest.fixture
def client(pair: Pair) -> Iterator[TestClient]:
    with _worker(pair, max_lag=2.0, wait=0.5) as made:
        yield made


@pytest.fixture
def patient(pair: Pair) -> Iterator[TestClient]:
    """A worker that keeps a paused replica in rotation (max lag 10 minutes): what it serves from there is
    then decided by freshness alone, not by the lag bound."""
    with _worker(pair, max_lag=600.0, wait=0.3) as made:
        yield made


def _reads(target: str) -> float:
    return REGISTRY.get_sample_value("ix_replica_reads_total", {"target": target}) or 0.0


def _on_primary(pair: Pair, statement: str, **params: object) -> None:
    engine = make_engine(pair.primary_url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(text(statement), params)
    engine.dispose()


def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def _post(client: TestClient, feed: Feed, first: int, count: int) -> str:
    answer = client.post(
        feed.url, json=envelope(*(make_indicator(n) for n in range(first, first + count))), headers=feed.writer.post
    )
    assert answer.status_code == 202, answer.text
    return answer.headers[LSN_HEADER]


def _ids(client: TestClient, feed: Feed, **headers: str) -> list[str]:
    answer = client.get(feed.url, headers={**feed.reader.basic, **headers})
    assert answer.status_code == 200, answer.text
    return [o["id"] for o in answer.json().get("objects", [])]


def _in_rotation(client: TestClient) -> bool:
    replicas = services_of(client.app).replicas
    assert replicas is not None
    return bool(replicas.healthy())


def test_polls_read_from_the_replica(patient: TestClient, feed: Feed, pair: Pair) -> None:
    _post(patient, feed, 0, 10)
    wait_replayed(pair.primary_url, pair.replica_url)
    replica, primary = _reads("replica"), _reads("primary")
    assert len(_ids(patient, feed)) == 10
    manifest = patient.get(f"/api1/collections/{feed.collection}/manifest/", headers=feed.reader.basic)
    assert len(manifest.json()["objects"]) == 10
    assert (_reads("replica") - replica, _reads("primary") - primary) == (2, 0)


def test_a_replica_behind_on_the_polled_collection_never_answers_it(
    patient: TestClient, feed: Feed, pair: Pair
) -> None:
    """Without X-IX-LSN too: the primary's clock for the collection is what the replica must have replayed."""
    _post(patient, feed, 0, 10)
    wait_replayed(pair.primary_url, pair.replica_url)
    _replay(pair, paused=True)
    lsn = _post(patient, feed, 10, 5)
    primary = _reads("primary")
    assert len(_ids(patient, feed)) == 15, "the paused replica answered a poll it had not replayed"
    assert len(_ids(patient, feed, **{LSN_HEADER: lsn})) == 15
    manifest = patient.get(f"/api1/collections/{feed.collection}/manifest/", headers=feed.reader.basic)
    assert len(manifest.json()["objects"]) == 15
    assert _reads("primary") - primary == 3
    _replay(pair, paused=False)
    wait_replayed(pair.primary_url, pair.replica_url)
    replica = _reads("replica")
    assert len(_ids(patient, feed)) == 15
    assert _reads("replica") - replica == 1, "caught up, the replica answers again"
    assert patient.get(feed.url, headers={**feed.reader.basic, LSN_HEADER: "not-an-lsn"}).status_code == 400


def test_writes_to_other_collections_do_not_hold_a_replica_back(patient: TestClient, pair: Pair) -> None:
    engine = make_engine(pair.primary_url, pool_size=1)
    with make_sessionmaker(engine)() as session:
        quiet, busy = make_feed(session, "quiet"), make_feed(session, "busy")
    engine.dispose()
    _post(patient, quiet, 0, 5)
    wait_replayed(pair.primary_url, pair.replica_url)
    _replay(pair, paused=True)
    _post(patient, busy, 100, 5)
    replica = _reads("replica")
    assert len(_ids(patient, quiet)) == 5
    assert _reads("replica") - replica == 1, "the quiet collection was not read from the replica"
    assert len(_ids(patient, busy)) == 5


def test_a_newer_version_and_a_delete_are_never_answered_around(patient: TestClient, feed: Feed, pair: Pair) -> None:
    _post(patient, feed, 0, 10)
    wait_replayed(pair.primary_url, pair.replica_url)
    _replay(pair, paused=True)
    newer = make_indicator(3, modified="2026-03-01T00:00:00.000Z")
    assert patient.post(feed.url, json=envelope(newer), headers=feed.writer.post).status_code == 202
    gone = make_indicator(5)["id"]
    assert patient.delete(f"{feed.url}{gone}/", headers=feed.writer.basic).status_code == 200
    answer = patient.get(feed.url, headers=feed.reader.basic).json()["objects"]
    assert gone not in [o["id"] for o in answer], "a deleted object was served"
    assert [o["modified"] for o in answer if o["id"] == newer["id"]] == ["2026-03-01T00:00:00.000Z"]
    single = patient.get(f"{feed.url}{gone}/", headers=feed.reader.basic)
    assert single.status_code == 404, single.text


def test_a_removed_grant_and_a_changed_default_tlp_apply_while_the_replica_lags(
    patient: TestClient, pair: Pair
) -> None:
    engine = make_engine(pair.primary_url, pool_size=1)
    with make_sessionmaker(engine)() as session:
        feed = make_feed(session, "retlp", reader_clearance="green", default_tlp="green")
        other = make_feed(session, "regrant")
    engine.dispose()
    unmarked = envelope(*(make_indicator(n, tlp=None) for n in range(5)))
    assert patient.post(feed.url, json=unmarked, headers=feed.writer.post).status_code == 202
    _post(patient, other, 0, 5)
    wait_replayed(pair.primary_url, pair.replica_url)
    assert len(_ids(patient, feed)) == 5  # the caller and the catalog cached
    assert len(_ids(patient, other)) == 5
    _replay(pair, paused=True)
    _on_primary(pair, "UPDATE collection SET default_tlp = 2 WHERE id = :id", id=feed.collection)
    assert _ids(patient, feed) == [], "served under the replica's old default TLP"
    _on_primary(pair, 'DELETE FROM "grant" WHERE collection_id = :id', id=other.collection)
    assert patient.get(other.url, headers=other.reader.basic).status_code == 404


def test_a_key_revoked_on_the_primary_is_refused_while_the_replica_lags(
    patient: TestClient, feed: Feed, pair: Pair
) -> None:
    assert patient.get(feed.url, headers=feed.reader.basic).status_code == 200  # cached on this worker
    _replay(pair, paused=True)
    engine = make_engine(pair.primary_url, pool_size=1)
    session: Session
    with make_sessionmaker(engine)() as session:
        admin.revoke_key(session, key_id=feed.reader.key_id)
        session.commit()
    engine.dispose()
    assert patient.get(feed.url, headers=feed.reader.basic).status_code == 401


def test_keyset_paging_while_the_replica_lags_is_complete_and_in_order(
    client: TestClient, feed: Feed, pair: Pair
) -> None:
    lsn = _post(client, feed, 0, 40)
    _until(lambda: len(_ids(client, feed, **{LSN_HEADER: lsn})) == 40)
    _replay(pair, paused=True)
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 7}
    posted = 40
    while True:
        body = client.get(feed.url, params=params, headers=feed.reader.basic).json()
        seen.extend(o["id"] for o in body.get("objects", []))
        if posted < 80:  # a writer between the pages: the replica has replayed none of it
            _post(client, feed, posted, 10)
            posted += 10
        if not body.get("more"):
            break
        params = {"limit": 7, "next": body["next"]}
    assert seen == [make_indicator(n)["id"] for n in range(80)]


def test_read_ahead_reads_on_the_replica_and_is_never_stale(patient: TestClient, feed: Feed, pair: Pair) -> None:
    """Pages are read ahead on the replica; one read ahead before a newer version of an object on it was
    written (on the primary) is not served."""
    _post(patient, feed, 0, 100)
    wait_replayed(pair.primary_url, pair.replica_url)
    read_ahead = services_of(patient.app).read_ahead
    assert read_ahead.enabled
    primary, served = _reads("primary"), read_ahead.served
    ids: list[str] = []
    params: dict[str, str | int] = {"limit": 10}
    while True:
        body = patient.get(feed.url, params=params, headers=feed.reader.basic).json()
        ids.extend(o["id"] for o in body["objects"])
        if not body.get("more"):
            break
        read_ahead.settle()
        params = {"limit": 10, "next": body["next"]}
    assert ids == [make_indicator(n)["id"] for n in range(100)]
    assert read_ahead.served - served >= 5, "pages were not served as read ahead"
    assert _reads("primary") == primary, "a page (or a page read ahead) was read on the primary"
    page = patient.get(feed.url, params={"limit": 50}, headers=feed.reader.basic).json()
    read_ahead.settle()  # page 2 is read ahead on the replica
    changed = make_indicator(60, modified="2026-03-01T00:00:00.000Z")
    assert patient.post(feed.url, json=envelope(changed), headers=feed.writer.post).status_code == 202
    seen = list(page["objects"])
    while page.get("more"):
        page = patient.get(feed.url, params={"limit": 50, "next": page["next"]}, headers=feed.reader.basic).json()
        seen.extend(page["objects"])
    versions = [o["modified"] for o in seen if o["id"] == changed["id"]]
    assert versions == ["2026-03-01T00:00:00.000Z"], "page 2 was served as read ahead, before the write"


def test_a_replica_lagging_too_far_leaves_the_rotation_and_comes_back(
    client: TestClient, feed: Feed, pair: Pair
) -> None:
    assert _in_rotation(client)
    _replay(pair, paused=True)
    _post(client, feed, 0, 5)
    time.sleep(2.5)
    _post(client, feed, 5, 5)  # WAL the paused replica receives but does not replay: its lag grows
    _until(lambda: not _in_rotation(client))
    assert len(_ids(client, feed)) == 10, "out of rotation: the primary answers"
    _replay(pair, paused=False)
    _until(lambda: _in_rotation(client))
    assert len(_ids(client, feed)) == 10


def test_a_replica_stopped_mid_poll_loses_nothing(client: TestClient, feed: Feed, pair: Pair) -> None:
    lsn = _post(client, feed, 0, 60)
    _until(lambda: len(_ids(client, feed, **{LSN_HEADER: lsn})) == 60)
    body = client.get(feed.url, params={"limit": 10}, headers=feed.reader.basic).json()
    seen = [o["id"] for o in body["objects"]]
    pair.replica.stop("immediate")
    try:
        while body.get("more"):
            answer = client.get(feed.url, params={"limit": 10, "next": body["next"]}, headers=feed.reader.basic)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            seen.extend(o["id"] for o in body["objects"])
        assert seen == [make_indicator(n)["id"] for n in range(60)]
        assert not _in_rotation(client)
    finally:
        pair.replica.start()
    _until(lambda: _in_rotation(client), seconds=30)
    ready = client.get("/readyz").json()
    assert ready["replicas"][0]["in_rotation"] is True


def _compliance(pair: Pair, feed: Feed, name: str) -> Key:
    engine = make_engine(pair.primary_url, pool_size=1)
    with make_sessionmaker(engine)() as session:
        made = make_key(session, name, kind="compliance", clearance="red", read=[feed.collection])
        session.commit()
    engine.dispose()
    wait_replayed(pair.primary_url, pair.replica_url)
    return made


def _exported(client: TestClient, feed: Feed, key: Key) -> list[str]:
    answer = client.get(
        "/api/v1/export", params={"collection": str(feed.collection), "format": "jsonl"}, headers=key.basic
    )
    assert answer.status_code == 200, answer.text
    return [line for line in answer.text.splitlines() if line]


def test_exports_read_from_a_replica_that_has_caught_up(patient: TestClient, feed: Feed, pair: Pair) -> None:
    auditor = _compliance(pair, feed, "export-auditor")
    _post(patient, feed, 0, 10)
    wait_replayed(pair.primary_url, pair.replica_url)
    replica, primary = _reads("replica"), _reads("primary")
    assert len(_exported(patient, feed, auditor)) == 10
    assert (_reads("replica") - replica, _reads("primary") - primary) == (1, 0)
    _replay(pair, paused=True)
    _post(patient, feed, 10, 5)
    assert len(_exported(patient, feed, auditor)) == 15, "the export was staler than the request"
    assert _reads("primary") - primary == 1


def test_reports_read_from_a_replica_that_has_caught_up(patient: TestClient, feed: Feed, pair: Pair) -> None:
    auditor = _compliance(pair, feed, "report-auditor")
    params = {"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "format": "json"}
    replica, primary = _reads("replica"), _reads("primary")
    answer = patient.get("/api/v1/reports/sharing", params=params, headers=auditor.basic)
    assert answer.status_code == 200, answer.text
    assert (_reads("replica") - replica, _reads("primary") - primary) == (1, 0)
    _replay(pair, paused=True)
    _post(patient, feed, 0, 5)
    answer = patient.get("/api/v1/reports/sharing", params=params, headers=auditor.basic)
    assert answer.status_code == 200, answer.text
    assert _reads("primary") - primary == 1, "a replica that had not replayed the write served the report"


def test_match_index_loads_from_a_replica_that_has_caught_up(patient: TestClient, feed: Feed, pair: Pair) -> None:
    now = datetime.now(UTC)

    def detect(n: int) -> None:
        detection = {
            "kind": "proxy_ip",
            "detector": "d",
            "value": f"46.91.113.{n}",
            "proxy_kind": "residential",
            "tlp": "amber",
            "first_seen": (now - timedelta(days=1)).isoformat(),
            "last_seen": now.isoformat(),
            "confidence": 70,
            "cluster": "hydra-x",
        }
        answer = patient.post("/api/v1/detections", json=[detection], headers=feed.writer.bearer)
        assert answer.status_code in (200, 201, 202), answer.text
        assert answer.json()["summary"]["created"] == 1, answer.text

    def matched(n: int) -> list[str]:
        event = {"timestamp": now.isoformat(), "event_id": f"e{n}", "source_ip": f"46.91.113.{n}"}
        answer = patient.post("/api/v1/match", json=[event], headers=feed.writer.bearer)
        assert answer.status_code == 200, answer.text
        return [m["event_id"] for m in answer.json()["matches"]]

    detect(1)
    wait_replayed(pair.primary_url, pair.replica_url)
    replica, primary = _reads("replica"), _reads("primary")
    assert matched(1) == ["e1"]
    assert (_reads("replica") - replica, _reads("primary") - primary) == (1, 0)
    _replay(pair, paused=True)
    detect(2)
    assert matched(2) == ["e2"], "the index was loaded from a replica that had not replayed the indicator"
    assert _reads("primary") - primary == 1


def test_streams_read_from_the_replica_and_do_not_stall_while_it_lags(feed: Feed, pair: Pair) -> None:
    env = {
        "IX_READ_REPLICA_URLS": pair.replica_url,
        "IX_REPLICA_MAX_LAG_SECONDS": "600",
        "IX_REPLICA_CHECK_SECONDS": "0.2",
        "IX_REPLICA_WAIT_SECONDS": "0.3",
    }
    _replay(pair, paused=False)
    with live_server(pair.primary_url, env=env) as server, httpx.Client(base_url=server.base, timeout=30) as http:
        assert http.post(feed.url, json=envelope(make_indicator(0)), headers=feed.writer.post).status_code == 202
        wait_replayed(pair.primary_url, pair.replica_url)
        before = _served_metric(http, "replica")
        url = f"{server.base}/api/v1/collections/{feed.collection}/stream"
        try:
            with subscribe(url, feed.reader.basic) as stream:
                assert stream.status == 200
                assert [o["id"] for o in stream.objects(1)[0]] == [make_indicator(0)["id"]]
                assert _served_metric(http, "replica") > before, "the stream's batch was not read on the replica"
                _replay(pair, paused=True)
                posted = http.post(feed.url, json=envelope(make_indicator(1)), headers=feed.writer.post)
                assert posted.status_code == 202
                assert [o["id"] for o in stream.objects(1)[0]] == [make_indicator(1)["id"]]
        finally:
            _replay(pair, paused=False)


def _served_metric(http: httpx.Client, target: str) -> float:
    scraped = http.get("/metrics").text
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if sample.name == "ix_replica_reads_total" and sample.labels.get("target") == target:
                return sample.value
    return 0.0


def test_without_a_caller_cache_polls_still_read_from_the_replica(feed: Feed, pair: Pair) -> None:
    """Each request authenticates on the primary afresh: the replica serves the page without a second check."""
    settings = make_settings(
        pair.primary_url,
        read_replica_urls=pair.replica_url,
        replica_max_lag_seconds=600.0,
        replica_check_seconds=0.2,
        auth_cache_seconds=0,
        statistics_interval_seconds=0,
    )
    with TestClient(create_app(settings)) as client:
        _post(client, feed, 0, 5)
        wait_replayed(pair.primary_url, pair.replica_url)
        replica = _reads("replica")
        assert len(_ids(client, feed)) == 5
        assert _reads("replica") - replica == 1


def test_an_export_whose_replica_stops_mid_stream_goes_on_from_the_primary(feed: Feed, pair: Pair) -> None:
    """Pages of 10: the replica is stopped after the first; the rest come from the primary, none lost or twice."""
    engine = make_engine(pair.primary_url, pool_size=1)
    session: Session
    with make_sessionmaker(engine)() as session:
        writer = make_key(session, "export-writer", kind="detector", write=[feed.collection])
        session.commit()
    with TestClient(create_app(make_settings(pair.primary_url, statistics_interval_seconds=0))) as client:
        answer = client.post(feed.url, json=envelope(*(make_indicator(n) for n in range(45))), headers=writer.post)
        assert answer.status_code == 202
    wait_replayed(pair.primary_url, pair.replica_url)
    replica_engine = make_engine(pair.replica_url, pool_size=1)
    fallbacks: list[str] = []

    def stop_after_first(stats: export.ExportStats) -> None:
        if stats.pages == 1:
            pair.replica.stop("immediate")

    def fallback(exc: BaseException) -> Session | None:
        if not database_unavailable(exc):
            return None
        fallbacks.append(type(exc).__name__)
        return make_sessionmaker(engine)()

    try:
        with make_sessionmaker(engine)() as primary_session:
            collection = export.resolve_collection(primary_session, str(feed.collection))
            plan = export.ExportRequest(collection=collection, clearance=3, page_size=10)
        with make_sessionmaker(replica_engine)() as replica_session:
            body = b"".join(export.stream(replica_session, plan, "jsonl", on_page=stop_after_first, fallback=fallback))
    finally:
        replica_engine.dispose()
        pair.replica.start()
        engine.dispose()
    ids = [orjson.loads(line)["id"] for line in body.splitlines() if line]
    assert ids == [make_indicator(n)["id"] for n in range(45)]
    assert len(fallbacks) == 1, "the replica did not stop mid-export"


def test_a_replica_lagging_longer_than_the_wait_is_not_waited_for(feed: Feed, pair: Pair) -> None:
    """In rotation (max lag 10 minutes) but measured further behind than the 3 s wait: the poll of a collection
    it has not replayed goes to the primary at once, not after 3 s."""
    _replay(pair, paused=False)
    settings = make_settings(
        pair.primary_url,
        read_replica_urls=pair.replica_url,
        replica_max_lag_seconds=600.0,
        replica_wait_seconds=3.0,
        replica_check_seconds=0.2,
        statistics_interval_seconds=0,
    )
    try:
        with TestClient(create_app(settings)) as client:
            _post(client, feed, 0, 5)
            wait_replayed(pair.primary_url, pair.replica_url)
            _replay(pair, paused=True)
            _post(client, feed, 5, 5)
            replicas = services_of(client.app).replicas
            assert replicas is not None
            _until(lambda: (replicas.replicas[0].lag_seconds or 0) > 3.5, seconds=30)
            began = time.monotonic()
            assert len(_ids(client, feed)) == 10
            assert time.monotonic() - began < 2.0, "the poll waited for a replica that could not catch up"
    finally:
        _replay(pair, paused=False)
