"""POST /api/v1/detections end to end, on PostgreSQL and SQLite."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.services import services_of
from tests.fixtures.factories import Key, make_collection, make_key, objects_url
from tests.fixtures.tables import stored_rows

NOW = datetime.now(UTC).replace(microsecond=0)
PROMPT = (
    "You are a meticulous expert. Solve the task below. Think step by step and write your complete chain of "
    "reasoning inside <thinking> tags, then give only the final answer. Task: prove that 17 is prime."
)


def detection(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kind": "proxy_ip",
        "detector": "proxy-graph",
        "value": "46.91.113.57",
        "proxy_kind": "residential",
        "first_seen": (NOW - timedelta(days=1)).isoformat(),
        "last_seen": NOW.isoformat(),
        "confidence": 60,
        "tlp": "amber",
        "cluster": "hydra-test-A",
    }
    values.update(overrides)
    return values


def without_proxy(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("value", "proxy_kind")}


def setup(session: Session) -> tuple[uuid.UUID, Key, Key]:
    collection = make_collection(session)
    detector = make_key(session, "detector-1", kind="detector", clearance="red", read=[collection], write=[collection])
    partner = make_key(session, "partner-1", read=[collection])
    session.commit()
    return collection, detector, partner


def push(client: TestClient, key: Key, body: Any, *, ndjson: bool = False) -> Any:
    headers = {"Authorization": key.bearer["Authorization"]}
    if ndjson:
        headers["Content-Type"] = "application/x-ndjson"
        return client.post("/api/v1/detections", content=body, headers=headers)
    return client.post("/api/v1/detections", json=body, headers=headers)


def objects_of(client: TestClient, key: Key, collection: uuid.UUID, stix_id: str) -> list[dict[str, Any]]:
    """Every stored version of one object, oldest first."""
    response = client.get(f"{objects_url(collection)}{stix_id}/", headers=key.basic, params={"match[version]": "all"})
    assert response.status_code == 200, response.text
    return sorted(response.json()["objects"], key=lambda o: str(o["modified"]))


class TestPush:
    def test_each_kind_becomes_indicators(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = setup(session)
        body = [
            detection(),
            detection(
                kind="prompt_signature", value=None, proxy_kind=None, prompt_text=PROMPT, capability="cot-elicitation"
            ),
            detection(kind="account_pattern", value=None, proxy_kind=None, email_domains=["mailbox-x.example"]),
        ]
        for item in body:
            item.pop("proxy_kind", None) if item["kind"] != "proxy_ip" else None
            item.pop("value", None) if item["kind"] != "proxy_ip" else None
        response = push(client, detector, body)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["summary"]["created"] == 3
        assert [len(r["stix_ids"]) for r in result["results"]] == [1, 2, 1]
        got = client.get(objects_url(collection), headers=detector.basic, params={"match[type]": "indicator"})
        assert len(got.json()["objects"]) == 4

    def test_ndjson_with_a_bad_line_stores_the_others(self, client: TestClient, session: Session) -> None:
        _, detector, _ = setup(session)
        lines = [
            json.dumps(detection()),
            "{not json",
            json.dumps(detection(value="999.1.1.1")),
            json.dumps(detection(value="46.112.100.0/24", proxy_kind="datacenter")),
        ]
        response = push(client, detector, "\n".join(lines), ndjson=True)
        assert response.status_code == 200
        outcomes = [(r["line"], r["outcome"]) for r in response.json()["results"]]
        assert outcomes == [(1, "created"), (2, "rejected"), (3, "rejected"), (4, "created")]
        error = response.json()["results"][2]["error"]
        assert error["field"] == "proxy_ip.value"

    def test_only_detectors_may_push(self, client: TestClient, session: Session) -> None:
        _, _, partner = setup(session)
        assert push(client, partner, [detection()]).status_code == 403

    def test_too_many_detections_are_refused_whole(self, client: TestClient, session: Session) -> None:
        _, detector, _ = setup(session)
        services_of(client.app).settings.max_detections_per_request = 2
        response = push(client, detector, [detection(value=f"46.91.113.{i}") for i in range(3)])
        assert response.status_code == 413


class TestVersioning:
    def test_repeat_unchanged_then_versioned_then_revoked_then_new_generation(
        self, client: TestClient, session: Session
    ) -> None:
        collection, detector, _ = setup(session)
        first = push(client, detector, [detection()]).json()["results"][0]
        assert first["outcome"] == "created"
        assert push(client, detector, [detection()]).json()["results"][0]["outcome"] == "unchanged"
        assert push(client, detector, [detection(confidence=80)]).json()["results"][0]["outcome"] == "versioned"
        revoked = push(client, detector, [detection(false_positive=True)]).json()["results"][0]
        assert revoked["outcome"] == "revoked"
        again = push(client, detector, [detection()]).json()["results"][0]
        assert again["outcome"] == "created"
        assert again["stix_ids"] != first["stix_ids"]
        versions = client.get(f"{objects_url(collection)}{first['stix_ids'][0]}/versions/", headers=detector.basic)
        assert len(versions.json()["versions"]) == 3

    def test_two_detectors_reporting_the_same_thing_make_one_indicator(
        self, client: TestClient, session: Session
    ) -> None:
        collection, detector, _ = setup(session)
        result = push(client, detector, [detection(detector="a"), detection(detector="b", confidence=70)]).json()
        assert result["results"][0]["stix_ids"] == result["results"][1]["stix_ids"]
        # One request makes one version of an object, however many of its lines touch it.
        assert [r["outcome"] for r in result["results"]] == ["created", "created"]
        stored = objects_of(client, detector, collection, result["results"][0]["stix_ids"][0])
        assert [o["confidence"] for o in stored] == [70]

    def test_a_batch_of_one_cluster_makes_one_campaign_version(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = setup(session)
        assert push(client, detector, [detection()]).json()["summary"]["created"] == 1
        later = [
            detection(value=f"46.91.113.{i}", last_seen=(NOW + timedelta(minutes=i)).isoformat()) for i in range(10)
        ]
        result = push(client, detector, later).json()
        assert result["summary"]["created"] == 10  # ten new addresses, one shared campaign
        campaign = client.get(objects_url(collection), headers=detector.basic, params={"match[type]": "campaign"})
        (campaign_id,) = {o["id"] for o in campaign.json()["objects"]}
        versions = objects_of(client, detector, collection, campaign_id)
        assert len(versions) == 2  # the first request's, then one for the whole second request
        assert versions[-1]["last_seen"].startswith((NOW + timedelta(minutes=9)).strftime("%Y-%m-%dT%H:%M"))


class TestPrivacy:
    def test_no_raw_prompt_or_pii_reaches_the_database(self, client: TestClient, session: Session) -> None:
        _, detector, _ = setup(session)
        body = [
            detection(kind="prompt_signature", prompt_text=PROMPT, capability="cot-elicitation"),
            detection(
                kind="account_pattern",
                identifiers=[
                    {"type": "email", "value": "Secret.Person@corp.example"},
                    {"type": "phone", "value": "+1 555 0100 999"},
                ],
            ),
            detection(kind="prompt_signature", prompt_text=PROMPT + " <<" + "x" * 2 + ">>", capability="nope"),
        ]
        response = push(client, detector, [without_proxy(item) for item in body])
        # What is searched below must have been stored: two detections, and the refusal of the third.
        assert response.status_code == 200, response.text
        assert [r["outcome"] for r in response.json()["results"]] == ["created", "created", "rejected"]
        dump = []
        for table in ("object_version", "detection_record", "ingest_refusal", "status"):
            rows = stored_rows(session, [table])
            assert rows or table == "status", f"nothing stored in {table}"
            dump += rows
        blob = "\n".join(dump).lower()
        assert "prove that 17 is prime" not in blob
        assert "secret.person" not in blob
        assert "555 0100" not in blob
        assert "5550100999" not in blob

    def test_public_scaffolds_are_refused_with_a_reason(self, client: TestClient, session: Session) -> None:
        _, detector, _ = setup(session)
        scaffold = (
            "You are a helpful assistant. Answer the user's question as accurately and concisely as "
            "possible. If you do not know the answer, say that you do not know."
        )
        item = without_proxy(detection(kind="prompt_signature", prompt_text=scaffold, capability="other"))
        result = push(client, detector, [item]).json()["results"][0]
        assert result["outcome"] == "rejected"
        assert "public scaffold" in result["error"]["message"]
