"""Issue 17's "Done means", end to end over real HTTP: two live instances on their own PostgreSQL databases, B
following A with ``indicator-exchange sync --follow``.

At A: detections for addresses on public warninglists and IANA special-purpose ranges are refused or flagged and
never matched; partners of several organisations post sightings and opinions over TAXII; the scores move as the
lifecycle view says; one partner voting many times does not revoke, a quorum of two organisations does (a new,
revoked version with the reason in the audit trail); feedback from a principal that cannot read the indicator is
refused and changes nothing; feedback on a partner's indicator is kept for its producer, not applied. At B: the
revoked indicator stops matching on ``POST /api/v1/match``.
"""

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.admin import service as admin
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope
from indicator_exchange.store.models import AuditEvent
from indicator_exchange.sync import service as sync
from tests.fixtures.factories import Key, make_collection, make_key, objects_url
from tests.fixtures.live_server import IX, LiveServer, live_server
from tests.fixtures.postgres import drop_database, fresh_database

A_IDENTITY = "identity--a0a0a0a0-0000-4000-8000-0000000000a0"
B_IDENTITY = "identity--b0b0b0b0-0000-4000-8000-0000000000b0"
ORGS = {  # principal -> (organisation, identity)
    "lab-a": ("Lab A", "identity--aaaaaaaa-0000-4000-8000-00000000000a"),
    "lab-a-2": ("Lab A", "identity--aaaaaaaa-0000-4000-8000-0000000000a2"),  # a second key of Lab A
    "lab-b": ("Lab B", "identity--bbbbbbbb-0000-4000-8000-00000000000b"),
    "lab-c": ("Lab C", "identity--cccccccc-0000-4000-8000-00000000000c"),
}
OUTSIDER = "identity--dddddddd-0000-4000-8000-00000000000d"
LISTED = {  # address -> the list that holds it (refused) or flags it
    "8.8.8.8": "List of known IPv4 public DNS resolvers",
    "10.0.0.1": "RFC 1918",
    "100.64.0.1": "RFC 6598",
    "192.0.2.1": "RFC 5737",
    "2001:db8::1": "RFC 3849",
}
CLOUD = "52.95.110.1"  # on MISP's Amazon AWS list: flagged by default, stored labelled, never enforced
CLOUD_RANGE, IN_CLOUD_RANGE = "52.95.110.0/24", "52.95.110.200"  # overlaps the AWS list: flagged too
X, Y = "45.83.12.7", "46.91.113.44"  # ordinary addresses no list holds
W = "46.91.113.45"  # a partner's own indicator


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def until(condition: Callable[[], bool], seconds: float = 60.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "timed out"
        time.sleep(0.1)
    return time.monotonic() - started


def feedback(kind: str, who: str, indicator_id: str, verdict: str | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    obj: dict[str, Any] = {
        "type": kind,
        "spec_version": "2.1",
        "id": f"{kind}--{uuid.uuid4()}",
        "created": stamp(now),
        "modified": stamp(now),
        "created_by_ref": ORGS[who][1] if who in ORGS else who,
        "object_marking_refs": [Tlp.GREEN.marking_id],
    }
    if kind == "sighting":
        obj.update(sighting_of_ref=indicator_id, count=2, last_seen=stamp(now))
    else:
        obj.update(opinion=verdict, object_refs=[indicator_id])
    return obj


class Instance:
    """A live server on its own database, and a session factory on that database."""

    def __init__(self, server: LiveServer, sessions: sessionmaker[Session]) -> None:
        self.server = server
        self.sessions = sessions

    def taxii_post(self, key: Key, collection: uuid.UUID, *objects: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            self.server.base + objects_url(collection), headers=key.post, json={"objects": list(objects)}, timeout=60
        )

    def posted(self, key: Key, collection: uuid.UUID, *objects: dict[str, Any]) -> dict[str, Any]:
        response = self.taxii_post(key, collection, *objects)
        assert response.status_code == 202, response.text
        status: dict[str, Any] = response.json()
        return status

    def lifecycle(self, key: Key, indicator_id: str) -> httpx.Response:
        return httpx.get(f"{self.server.base}/api/v1/indicators/{indicator_id}/lifecycle", headers=key.bearer)

    def view(self, key: Key, indicator_id: str) -> dict[str, Any]:
        response = self.lifecycle(key, indicator_id)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def matched(self, key: Key, *addresses: str) -> dict[str, str]:
        """Address -> indicator id of each address ``POST /api/v1/match`` matches."""
        at = datetime.now(UTC).isoformat()
        events = [{"timestamp": at, "event_id": a, "source_ip": a} for a in addresses]
        response = httpx.post(f"{self.server.base}/api/v1/match", json=events, headers=key.bearer, timeout=60)
        assert response.status_code == 200, response.text
        return {m["event_id"]: m["indicator_id"] for m in response.json()["matches"]}


def partner(session: Session, name: str, collections: list[uuid.UUID]) -> Key:
    organisation, identity = ORGS[name]
    admin.create_principal(session, name=name, organisation=organisation, identity_ref=identity, clearance="amber")
    for collection_id in collections:
        admin.grant(session, principal=name, collection_id=collection_id, read=True, write=True)
    created = admin.create_key(session, principal=name)
    return Key(principal=name, key_id=str(created["key_id"]), secret=str(created["secret"]))


@pytest.fixture
def databases(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:8]
    names = (f"ix_done_a_{tag}", f"ix_done_b_{tag}")
    urls = tuple(fresh_database(pg_admin_url, name) for name in names)
    for url in urls:
        migrate.upgrade(url)
    yield urls[0], urls[1]
    for name in names:
        drop_database(pg_admin_url, name)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_done_means(databases: tuple[str, str]) -> None:
    a_url, b_url = databases
    with ExitStack() as stack:
        engines = [make_engine(a_url), make_engine(b_url)]
        for engine in engines:
            stack.callback(engine.dispose)
        a_sessions, b_sessions = (make_sessionmaker(e) for e in engines)

        # --- A: the producer, its partners, an outsider, and the principal B follows with ------------------
        with session_scope(a_sessions) as session:
            shared = make_collection(session, title="Shared proxies")
            own = make_collection(session, title="Outsider's")
            detector = make_key(session, "det", kind="detector", clearance="red", read=[shared], write=[shared])
            ops = make_key(session, "ops", kind="admin", clearance="red")
            keys = {name: partner(session, name, [shared]) for name in ORGS}
            outsider = make_key(session, "outsider", read=[own], write=[own], identity_ref=OUTSIDER)
            follower = make_key(session, "instance-b", read=[shared], clearance="amber")
        # --- B: follows A's shared collection; a reader matches there ---------------------------------------
        with session_scope(b_sessions) as session:
            mirror = make_collection(session, root="local", title="From A")
            b_reader = make_key(session, "b-reader", read=[mirror], clearance="amber")
        a = Instance(stack.enter_context(live_server(a_url, env={"IX_IDENTITY_ID": A_IDENTITY})), a_sessions)
        b_env = {"IX_IDENTITY_ID": B_IDENTITY}
        b = Instance(stack.enter_context(live_server(b_url, env=b_env)), b_sessions)
        with session_scope(b_sessions) as session:
            sync.create_source(
                session,
                name="instance-a",
                url=f"{a.server.base}/taxii2/",
                api_root="api1",
                remote_collection=str(shared),
                local_collection=mirror,
                credentials_ref="env:A_SECRET",
                page_size=100,
                direction="pull",
                max_tlp="amber",
            )
        env = dict(os.environ, IX_DATABASE_URL=b_url, A_SECRET=f"{follower.key_id}:{follower.secret}", **b_env)
        following = subprocess.Popen([IX, "sync", "--follow"], env=env, stderr=subprocess.DEVNULL)
        stack.callback(following.wait, 30)
        stack.callback(following.terminate)

        # --- detections: listed addresses refused or flagged, never matched ---------------------------------
        now = datetime.now(UTC).replace(microsecond=0)
        lines = [
            {
                "kind": "proxy_ip",
                "detector": "d",
                "value": value,
                "proxy_kind": "datacenter",
                "tlp": "green",
                "confidence": 80,
                "first_seen": (now - timedelta(hours=1)).isoformat(),
                "last_seen": now.isoformat(),
            }
            for value in [*LISTED, CLOUD, CLOUD_RANGE, X, Y]
        ]
        response = httpx.post(f"{a.server.base}/api/v1/detections", json=lines, headers=detector.bearer, timeout=120)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        for result, (address, list_name) in zip(results, LISTED.items(), strict=False):
            assert result["outcome"] == "rejected", (address, result)
            assert list_name in result["error"]["message"], (address, result)
        *flagged, x_result, y_result = results[len(LISTED) :]
        for result in flagged:
            assert result["outcome"] == "created", result
            assert any("Amazon AWS" in note for note in result["adjusted"]), result
        assert (x_result["outcome"], y_result["outcome"]) == ("created", "created")
        x_id, y_id = (next(i for i in r["stix_ids"] if i.startswith("indicator--")) for r in (x_result, y_result))
        # A partner posts its own indicator of a public resolver over TAXII: stored, never enforced.
        resolver = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.uuid4()}",
            "created": stamp(now),
            "modified": stamp(now),
            "created_by_ref": ORGS["lab-c"][1],
            "pattern_type": "stix",
            "pattern": "[ipv4-addr:value = '8.8.8.8']",
            "valid_from": stamp(now - timedelta(hours=1)),
            "confidence": 90,
            "object_marking_refs": [Tlp.GREEN.marking_id],
        }
        partners_own = {**resolver, "id": f"indicator--{uuid.uuid4()}", "pattern": f"[ipv4-addr:value = '{W}']"}
        assert a.posted(keys["lab-c"], shared, resolver, partners_own)["success_count"] == 2
        everything = [*LISTED, CLOUD, IN_CLOUD_RANGE, X, Y, W]
        assert a.matched(ops, *everything) == {X: x_id, Y: y_id, W: partners_own["id"]}
        assert a.view(ops, str(resolver["id"]))["why_not_enforced"].startswith("on a warninglist")
        until(lambda: b.matched(b_reader, *everything) == {X: x_id, Y: y_id, W: partners_own["id"]})

        # --- one organisation voting many times, with two keys, counts once and does not revoke ------------
        for name in ("lab-a", "lab-a", "lab-a-2", "lab-a", "lab-a-2"):
            a.posted(keys[name], shared, feedback("opinion", name, y_id, "strongly-disagree"))
        y_view = a.view(ops, y_id)
        assert y_view["score"]["false_positives"] == 1
        assert y_view["false_positive_organisations"] == ["Lab A"]
        assert y_view["score"]["base"] == pytest.approx(53.33, abs=0.01)  # 80·(0+1)/(0+1+2)·2
        assert y_view["revoked"] is False
        assert y_view["enforced"] is True

        # --- a sighting from Lab B: a true positive, t restarts, base rises ---------------------------------
        a.posted(keys["lab-b"], shared, feedback("sighting", "lab-b", x_id))
        x_view = a.view(ops, x_id)
        assert x_view["score"]["true_positives"] == 1
        assert x_view["score"]["base"] == 100.0  # 80·(1+1)/(1+0+2)·2 = 106.7, clamped
        assert x_view["score"]["elapsed_seconds"] < 60
        assert [e["action"] for e in x_view["events"]] == ["extended"]

        # --- a principal that cannot read X: refused over TAXII, nothing changes ----------------------------
        refused = a.posted(outsider, own, feedback("opinion", OUTSIDER, x_id, "strongly-disagree"))
        assert refused["failure_count"] == 1
        assert "not an indicator you may read" in str(refused["failures"])
        direct = a.taxii_post(outsider, shared, feedback("opinion", OUTSIDER, x_id, "strongly-disagree"))
        assert direct.status_code in (403, 404), direct.text
        assert "title" in direct.json()  # a TAXII error resource
        assert a.lifecycle(outsider, x_id).status_code == 404
        assert a.view(ops, x_id)["feedback"] == x_view["feedback"]

        # --- feedback on a partner's indicator: kept where posted for its producer, not applied by A -------
        for name in ("lab-a", "lab-b"):
            a.posted(keys[name], shared, feedback("opinion", name, str(partners_own["id"]), "disagree"))
        w_view = a.view(ops, str(partners_own["id"]))
        assert (w_view["ours"], w_view["revoked"], w_view["events"]) == (False, False, [])
        assert w_view["false_positive_organisations"] == ["Lab A", "Lab B"]
        assert len(w_view["versions"]) == 1  # A wrote no version of Lab C's indicator
        opinions = httpx.get(
            a.server.base + objects_url(shared),
            params={"match[type]": "opinion"},
            headers=keys["lab-c"].basic,
            timeout=60,
        ).json()["objects"]
        assert sum(str(partners_own["id"]) in o["object_refs"] for o in opinions) == 2  # the producer reads them

        # --- a quorum of two organisations revokes X by a new version, with the reason audited --------------
        a.posted(keys["lab-a"], shared, feedback("opinion", "lab-a", x_id, "disagree"))
        assert a.view(ops, x_id)["revoked"] is False
        a.posted(keys["lab-b"], shared, feedback("opinion", "lab-b", x_id, "strongly-disagree"))
        x_view = a.view(ops, x_id)
        assert x_view["revoked"] is True
        assert x_view["why_not_enforced"] == "revoked"
        assert x_view["versions"][-1]["revoked"] is True
        revoked = x_view["events"][-1]
        assert revoked["action"] == "revoked"
        assert revoked["organisations"] == ["Lab A", "Lab B"]
        assert "IX_FP_QUORUM 2" in revoked["reason"]
        with a_sessions() as session:
            audited = session.scalars(
                select(AuditEvent.detail).where(AuditEvent.object_id == x_id, AuditEvent.outcome == "revoked")
            ).all()
        assert len(audited) == 1
        assert "false-positive votes from 2 organisations" in audited[0]
        assert X not in a.matched(ops, *everything)

        # --- B, following A, stops matching the revoked indicator; the rest still match ---------------------
        took = until(lambda: X not in b.matched(b_reader, *everything))
        assert b.matched(b_reader, *everything) == {Y: y_id, W: partners_own["id"]}
        assert took < 30
        assert following.poll() is None, "the follower exited"
