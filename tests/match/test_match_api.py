"""POST /api/v1/match and sightings back, through the real ingest path, on both backends."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.match.events import MatchResult
from tests.fixtures.factories import Key, make_collection, make_key, objects_url

NOW = datetime.now(UTC).replace(microsecond=0)


def seed(client: TestClient, session: Session) -> tuple[uuid.UUID, Key, Key, Key]:
    collection = make_collection(session)
    detector = make_key(session, "det", kind="detector", clearance="red", read=[collection], write=[collection])
    green_reader = make_key(session, "green-partner", clearance="green", read=[collection])
    writer = make_key(session, "amber-partner", clearance="amber", read=[collection], write=[collection])
    session.commit()
    window = {
        "first_seen": (NOW - timedelta(days=1)).isoformat(),
        "last_seen": NOW.isoformat(),
        "confidence": 70,
        "cluster": "hydra-x",
    }
    body = [
        {
            "kind": "proxy_ip",
            "detector": "d",
            "value": "46.91.113.7",
            "proxy_kind": "residential",
            "tlp": "amber",
            **window,
        },
        {
            "kind": "proxy_ip",
            "detector": "d",
            "value": "46.112.100.0/24",
            "proxy_kind": "datacenter",
            "tlp": "green",
            **window,
        },
    ]
    response = client.post("/api/v1/detections", json=body, headers={"Authorization": detector.bearer["Authorization"]})
    assert response.json()["summary"]["created"] == 2
    return collection, detector, green_reader, writer


def events() -> list[dict[str, object]]:
    at = NOW.isoformat()
    return [
        {"timestamp": at, "event_id": "a", "source_ip": "46.91.113.7"},
        {"timestamp": at, "event_id": "b", "source_ip": "46.112.100.200"},
        {"timestamp": at, "event_id": "c", "source_ip": "46.133.2.1"},
    ]


class TestMatchApi:
    def test_matches_stop_at_the_callers_clearance(self, client: TestClient, session: Session) -> None:
        _, _, green, writer = seed(client, session)
        auth = {"Authorization": writer.bearer["Authorization"]}
        found = client.post("/api/v1/match", json=events(), headers=auth).json()["matches"]
        assert sorted(m["event_id"] for m in found) == ["a", "b"]
        assert all(m["campaign_ids"] for m in found)
        green_auth = {"Authorization": green.bearer["Authorization"]}
        found = client.post("/api/v1/match", json=events(), headers=green_auth).json()["matches"]
        assert [m["event_id"] for m in found] == ["b"]

    def test_a_deleted_indicator_stops_matching_at_once(self, client: TestClient, session: Session) -> None:
        """The compiled index is cached per collection clock; a TAXII DELETE advances the clock."""
        collection, _, _, writer = seed(client, session)
        admin = make_key(session, "admin", kind="admin", clearance="red", read=[collection], write=[collection])
        session.commit()
        auth = {"Authorization": writer.bearer["Authorization"]}
        found = client.post("/api/v1/match", json=events(), headers=auth).json()["matches"]
        gone = next(m["indicator_id"] for m in found if m["event_id"] == "a")
        deleted = client.delete(objects_url(collection) + f"{gone}/", headers=admin.basic)
        assert deleted.status_code == 200, deleted.text
        found = client.post("/api/v1/match", json=events(), headers=auth).json()["matches"]
        assert [m["event_id"] for m in found] == ["b"]

    def test_a_bad_event_is_reported_and_the_rest_matched(self, client: TestClient, session: Session) -> None:
        _, _, _, writer = seed(client, session)
        bad = [{"timestamp": "yesterday", "source_ip": "46.91.113.7"}, *events(), "not an object"]
        response = client.post("/api/v1/match", json=bad, headers={"Authorization": writer.bearer["Authorization"]})
        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["events"], result["rejected"]) == (3, 2)
        assert [(r["event_index"], r["line"], r["field"]) for r in result["rejections"]] == [
            (0, 1, "timestamp"),
            (4, 5, "event"),
        ]
        assert all(r["reason"] for r in result["rejections"])
        assert "yesterday" not in response.text  # reasons never echo the event
        # event_index stays the input position: the rejected first event shifts nothing.
        assert sorted((m["event_index"], m["event_id"]) for m in result["matches"]) == [(1, "a"), (2, "b")]

    def test_a_phone_that_is_not_a_phone_is_a_rejection(self, client: TestClient, session: Session) -> None:
        _, _, _, writer = seed(client, session)
        at = NOW.isoformat()
        bad = [
            {"timestamp": at, "source_ip": "46.91.113.7", "identifiers": {"phone": "call me at 5"}},
            *events(),
            {"timestamp": at, "identifiers": {"phone": "+44 7700 900123"}},
        ]
        response = client.post("/api/v1/match", json=bad, headers={"Authorization": writer.bearer["Authorization"]})
        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["events"], result["rejected"]) == (4, 1)
        assert [(r["event_index"], r["line"], r["field"]) for r in result["rejections"]] == [(0, 1, "identifiers")]
        assert "phone" in result["rejections"][0]["reason"]
        assert "call me" not in response.text
        assert sorted((m["event_index"], m["event_id"]) for m in result["matches"]) == [(1, "a"), (2, "b")]

    def test_ndjson_lines_are_numbered_like_the_body(self, client: TestClient, session: Session) -> None:
        _, _, _, writer = seed(client, session)
        good = [json.dumps(e) for e in events()]
        body = "\n".join([good[0], "", '{"timestamp": ', good[1], json.dumps({"source_ip": "1.2.3.4"}), good[2]])
        headers = {"Authorization": writer.bearer["Authorization"], "Content-Type": "application/x-ndjson"}
        result = client.post("/api/v1/match", content=body, headers=headers).json()
        assert (result["events"], result["rejected"]) == (3, 2)
        assert [(r["event_index"], r["line"], r["field"]) for r in result["rejections"]] == [
            (1, 3, "body"),
            (3, 5, "timestamp"),
        ]
        assert result["rejections"][0]["reason"].startswith("not valid JSON")
        assert sorted((m["event_index"], m["event_id"]) for m in result["matches"]) == [(0, "a"), (2, "b")]

    def test_the_answer_follows_its_published_schema(self, client: TestClient, session: Session) -> None:
        _, _, _, writer = seed(client, session)
        bad = [*events(), {"timestamp": NOW.isoformat(), "unknown": 1}]
        answer = client.post("/api/v1/match", json=bad, headers={"Authorization": writer.bearer["Authorization"]})
        parsed = MatchResult.model_validate(answer.json())
        assert [(r.field, r.event_index) for r in parsed.rejections] == [("unknown", 3)]
        assert parsed.sightings is None

    def test_sightings_are_stored_in_the_indicators_collection(self, client: TestClient, session: Session) -> None:
        collection, detector, _, writer = seed(client, session)
        auth = {"Authorization": writer.bearer["Authorization"]}
        result = client.post("/api/v1/match", params={"sightings": "true"}, json=events() * 3, headers=auth).json()
        assert result["sightings"] == {"sightings": 2, "skipped": 0}
        stored = client.get(objects_url(collection), params={"match[type]": "sighting"}, headers=detector.basic)
        sightings = stored.json()["objects"]
        assert sorted(s["count"] for s in sightings) == [3, 3]
        assert all(s["where_sighted_refs"] == [s["created_by_ref"]] for s in sightings)
