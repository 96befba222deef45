"""Feedback over TAXII: per-organisation votes, a false-positive quorum revokes, a sighting extends, and a
principal that cannot read the indicator changes nothing."""

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.admin import service as admin
from indicator_exchange.cli import app as cli
from indicator_exchange.settings import Settings
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store.models import IndicatorFeedback, LifecycleEvent, ObjectVersion
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url

LABS = {
    "lab-a": ("Lab A", "identity--aaaaaaaa-0000-4000-8000-00000000000a"),
    "lab-b": ("Lab B", "identity--bbbbbbbb-0000-4000-8000-00000000000b"),
    "lab-a2": ("Lab A", "identity--aaaaaaaa-0000-4000-8000-0000000000a2"),  # a second key of Lab A
}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def partner(session: Session, name: str, collections: list[uuid.UUID]) -> Key:
    organisation, identity = LABS[name]
    admin.create_principal(session, name=name, organisation=organisation, identity_ref=identity, clearance="amber")
    for collection_id in collections:
        admin.grant(session, principal=name, collection_id=collection_id, read=True, write=True)
    created = admin.create_key(session, principal=name)
    return Key(principal=name, key_id=str(created["key_id"]), secret=str(created["secret"]))


def opinion(who: str, indicator_id: str, verdict: str) -> dict[str, object]:
    now = stamp(datetime.now(UTC))
    return {
        "type": "opinion",
        "spec_version": "2.1",
        "id": f"opinion--{uuid.uuid4()}",
        "created": now,
        "modified": now,
        "created_by_ref": LABS[who][1],
        "opinion": verdict,
        "object_refs": [indicator_id],
        "object_marking_refs": [Tlp.GREEN.marking_id],
    }


def sighting(who: str, indicator_id: str) -> dict[str, object]:
    moment = datetime.now(UTC)
    return {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{uuid.uuid4()}",
        "created": stamp(moment),
        "modified": stamp(moment),
        "created_by_ref": LABS[who][1],
        "sighting_of_ref": indicator_id,
        "count": 3,
        "first_seen": stamp(moment - timedelta(minutes=5)),
        "last_seen": stamp(moment),
        "object_marking_refs": [Tlp.GREEN.marking_id],
    }


class Exchange:
    """Our indicator in a collection partners read and write; an outsider with a collection of its own."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.collection = make_collection(session)
        self.other = make_collection(session, title="Outsider's")
        self.admin = make_key(session, "ops", kind="admin", clearance="red")
        self.keys = {name: partner(session, name, [self.collection]) for name in LABS}
        self.outsider = make_key(
            session,
            "outsider",
            read=[self.other],
            write=[self.other],
            identity_ref="identity--cccccccc-0000-4000-8000-00000000000c",
        )
        session.commit()
        valid_from = datetime.now(UTC) - timedelta(hours=1)
        self.indicator = make_indicator(
            7,
            created_by_ref=settings.identity_id,
            confidence=60,
            pattern="[ipv4-addr:value = '45.83.12.7']",
            valid_from=valid_from.strftime("%Y-%m-%dT%H:%M:%SZ"),
            valid_until=(valid_from + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            modified=stamp(valid_from),
            created=stamp(valid_from),
        )
        self.id = str(self.indicator["id"])
        self.url = objects_url(self.collection)

    def post(
        self, client: TestClient, key: Key, *objects: dict[str, object], url: str | None = None
    ) -> dict[str, object]:
        response = client.post(url or self.url, headers=key.post, json=envelope(*objects))
        assert response.status_code == 202, response.text
        body: dict[str, object] = response.json()
        return body

    def latest(self, session: Session) -> tuple[int, bool]:
        """(version, revoked) of the stored latest version; the read is ended (SQLite: the app writes next)."""
        session.rollback()
        row = session.execute(
            select(ObjectVersion).where(
                ObjectVersion.collection_id == self.collection,
                ObjectVersion.stix_id == self.id,
                ObjectVersion.is_latest.is_(True),
            )
        ).scalar_one()
        found = (row.version, row.revoked)
        session.rollback()
        return found


def _start(client: TestClient, session: Session, settings: Settings, confidence: int = 60) -> Exchange:
    exchange = Exchange(session, settings)
    exchange.indicator["confidence"] = confidence
    status = exchange.post(client, exchange.admin, exchange.indicator)
    assert status["success_count"] == 1, status
    return exchange


class TestVotes:
    def test_one_organisation_voting_many_times_counts_once(
        self, client: TestClient, session: Session, settings: Settings
    ) -> None:
        ex = _start(client, session, settings)
        for key in ("lab-a", "lab-a", "lab-a2"):  # three votes, two keys, one organisation
            ex.post(client, ex.keys[key], opinion(key, ex.id, "strongly-disagree"))
        assert ex.latest(session)[1] is False
        lifecycle = client.get(f"/api/v1/indicators/{ex.id}/lifecycle", headers=ex.admin.basic).json()
        assert lifecycle["score"]["false_positives"] == 1
        assert lifecycle["score"]["base"] == 40.0  # 60·(0+1)/(0+1+2)·2

    def test_a_quorum_of_organisations_revokes(self, client: TestClient, session: Session, settings: Settings) -> None:
        ex = _start(client, session, settings)
        ex.post(client, ex.keys["lab-a"], opinion("lab-a", ex.id, "disagree"))
        assert ex.latest(session)[1] is False
        ex.post(client, ex.keys["lab-b"], opinion("lab-b", ex.id, "strongly-disagree"))
        assert ex.latest(session)[1] is True
        event = session.execute(select(LifecycleEvent).where(LifecycleEvent.indicator_id == ex.id)).scalar_one()
        session.rollback()
        assert event.action == "revoked"
        assert event.organisations == ["Lab A", "Lab B"]
        assert "IX_FP_QUORUM 2" in event.reason

    def test_one_organisation_alone_never_revokes_even_below_threshold(
        self, client: TestClient, session: Session, settings: Settings
    ) -> None:
        ex = _start(client, session, settings, confidence=40)
        ex.post(client, ex.keys["lab-a"], opinion("lab-a", ex.id, "strongly-disagree"))
        lifecycle = client.get(f"/api/v1/indicators/{ex.id}/lifecycle", headers=ex.admin.basic).json()
        assert lifecycle["score"]["score"] < lifecycle["score"]["threshold"]  # 40·1/3·2 = 26.7 < 30
        assert lifecycle["enforced"] is False
        assert ex.latest(session)[1] is False  # not revoked: one partner is not a quorum

    def test_the_cli_shows_the_lifecycle(
        self, client: TestClient, session: Session, settings: Settings, cli_env: str
    ) -> None:
        ex = _start(client, session, settings)
        ex.post(client, ex.keys["lab-a"], opinion("lab-a", ex.id, "disagree"))
        ex.post(client, ex.keys["lab-b"], opinion("lab-b", ex.id, "disagree"))
        result = CliRunner().invoke(cli, ["lifecycle", "show", ex.id, "--json"])
        assert result.exit_code == 0, result.output
        view = json.loads(result.stdout)
        assert view["revoked"] is True
        assert view["false_positive_organisations"] == ["Lab A", "Lab B"]
        assert [e["action"] for e in view["events"]] == ["revoked"]
        shown = CliRunner().invoke(cli, ["lifecycle", "show", ex.id])
        assert "not enforced: revoked" in shown.stdout
        missing = CliRunner().invoke(cli, ["lifecycle", "show", "indicator--00000000-0000-4000-8000-000000000000"])
        assert missing.exit_code == 1

    def test_a_sighting_extends_valid_until_once_a_day(
        self, client: TestClient, session: Session, settings: Settings
    ) -> None:
        ex = _start(client, session, settings)
        before = ex.latest(session)[0]
        ex.post(client, ex.keys["lab-a"], sighting("lab-a", ex.id))
        extended = ex.latest(session)
        assert extended[0] > before
        served = client.get(f"{ex.url}{ex.id}/", headers=ex.admin.basic).json()["objects"][0]
        assert served["valid_until"] > str(ex.indicator["valid_until"])  # now + 72 h (residential-ip? datacenter)
        ex.post(client, ex.keys["lab-b"], sighting("lab-b", ex.id))
        assert ex.latest(session)[0] == extended[0]  # not twice in a day
        lifecycle = client.get(f"/api/v1/indicators/{ex.id}/lifecycle", headers=ex.admin.basic).json()
        assert lifecycle["score"]["true_positives"] == 2
        assert lifecycle["score"]["elapsed_seconds"] < 60  # t restarts at the last true positive

    def test_feedback_from_a_principal_that_cannot_read_the_indicator_changes_nothing(
        self, client: TestClient, session: Session, settings: Settings
    ) -> None:
        ex = _start(client, session, settings)
        refused = opinion("lab-a", ex.id, "disagree")
        refused["created_by_ref"] = "identity--cccccccc-0000-4000-8000-00000000000c"
        status = ex.post(client, ex.outsider, refused, url=objects_url(ex.other))
        assert status["failure_count"] == 1
        assert "not an indicator you may read" in str(status["failures"])
        session.rollback()
        assert session.execute(select(IndicatorFeedback)).scalars().all() == []
        session.rollback()
        response = client.get(f"/api/v1/indicators/{ex.id}/lifecycle", headers=ex.outsider.basic)
        assert response.status_code == 404
        before = ex.latest(session)
        direct = client.post(ex.url, headers=ex.outsider.post, json=envelope(refused))  # no grant on its collection
        assert direct.status_code in (403, 404), direct.text
        assert "title" in direct.json()  # a TAXII error resource
        assert ex.latest(session) == before
        session.rollback()
        assert session.execute(select(IndicatorFeedback)).scalars().all() == []
        session.rollback()

    def test_feedback_on_a_partners_indicator_is_kept_for_its_producer_not_applied(
        self, client: TestClient, session: Session, settings: Settings
    ) -> None:
        ex = Exchange(session, settings)
        theirs = make_indicator(
            8,
            created_by_ref=LABS["lab-b"][1],
            confidence=60,
            pattern="[ipv4-addr:value = '45.83.12.8']",
            valid_from=stamp(datetime.now(UTC) - timedelta(hours=1)),
        )
        assert ex.post(client, ex.keys["lab-b"], theirs)["success_count"] == 1
        for name in ("lab-a", "lab-b"):  # a quorum of organisations, were it ours
            ex.post(client, ex.keys[name], opinion(name, str(theirs["id"]), "disagree"))
        view = client.get(f"/api/v1/indicators/{theirs['id']}/lifecycle", headers=ex.admin.basic).json()
        assert (view["ours"], view["revoked"], view["events"]) == (False, False, [])
        assert view["false_positive_organisations"] == ["Lab A", "Lab B"]
        assert len(view["versions"]) == 1  # we wrote no version of Lab B's indicator
        served = client.get(ex.url, params={"match[type]": "opinion"}, headers=ex.keys["lab-b"].basic).json()
        assert sum(str(theirs["id"]) in o["object_refs"] for o in served["objects"]) == 2  # the producer reads them


def _matched(client: TestClient, key: Key, indicator_id: str) -> float | None:
    """The score POST /api/v1/match gives ``indicator_id`` for traffic from its address, or None: not matched."""
    at = datetime.now(UTC).isoformat()
    response = client.post(
        "/api/v1/match",
        json=[{"timestamp": at, "event_id": "e", "source_ip": "45.83.12.7"}],
        headers={"Authorization": key.bearer["Authorization"]},
    )
    assert response.status_code == 200, response.text
    found = [m for m in response.json()["matches"] if m["indicator_id"] == indicator_id]
    return float(found[0]["score"]) if found else None


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "timed out"
        time.sleep(0.05)
    return time.monotonic() - started


class TestLiveIndexFollowsFeedback:
    def test_feedback_stored_elsewhere_moves_the_live_index_within_a_second(
        self, client: TestClient, session: Session, settings: Settings
    ) -> None:
        """No new version: one organisation's vote sinks the score below the threshold (not a quorum, so not
        revoked) and another's sighting lifts it, both posted to a collection the matcher does not read."""
        ex = _start(client, session, settings, confidence=40)
        elsewhere = make_collection(session, title="Partners' feedback")
        for name in ("lab-a", "lab-b"):
            admin.grant(session, principal=name, collection_id=elsewhere, read=True, write=True)
        matcher = make_key(session, "matcher", read=[ex.collection], clearance="amber")
        session.commit()
        assert _matched(client, matcher, ex.id) is not None  # the live index is built, with no feedback

        before = ex.latest(session)
        ex.post(client, ex.keys["lab-a"], opinion("lab-a", ex.id, "strongly-disagree"), url=objects_url(elsewhere))
        assert _until(lambda: _matched(client, matcher, ex.id) is None) < 1.5
        assert ex.latest(session) == before  # not a quorum: no new version; the score alone stopped it

        ex.post(client, ex.keys["lab-b"], sighting("lab-b", ex.id), url=objects_url(elsewhere))
        assert _until(lambda: _matched(client, matcher, ex.id) is not None) < 1.5
        score = _matched(client, matcher, ex.id)
        assert score is not None
        assert score > 39.9  # 40·(1+1)/(1+1+2)·2 = 40, t restarted at the sighting
