"""Warninglists at ingest (refused per line naming the list, or flagged), and the matcher: it never enforces a
flagged indicator, skips one below its threshold, says why with --explain, and reports each match's score."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from tests.fixtures.factories import Key, make_collection, make_key

NOW = datetime.now(UTC).replace(microsecond=0)
AWS = "52.95.110.1"  # on MISP's Amazon AWS list: flagged by default


def proxy(
    value: str, *, confidence: int = 70, kind: str = "datacenter", age: timedelta = timedelta(0)
) -> dict[str, object]:
    return {
        "kind": "proxy_ip",
        "detector": "d",
        "value": value,
        "proxy_kind": kind,
        "tlp": "green",
        "first_seen": (NOW - age - timedelta(hours=1)).isoformat(),
        "last_seen": (NOW - age).isoformat(),
        "confidence": confidence,
    }


def push(client: TestClient, detector: Key, *lines: dict[str, object]) -> dict[str, object]:
    response = client.post(
        "/api/v1/detections", json=list(lines), headers={"Authorization": detector.bearer["Authorization"]}
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def setup(session: Session) -> tuple[Key, Key]:
    collection = make_collection(session)
    detector = make_key(session, "det", kind="detector", clearance="red", read=[collection], write=[collection])
    reader = make_key(session, "reader", clearance="amber", read=[collection])
    session.commit()
    return detector, reader


class TestIngest:
    def test_a_listed_address_is_refused_naming_the_list(self, client: TestClient, session: Session) -> None:
        detector, _ = setup(session)
        body = push(client, detector, proxy("8.8.8.8"), proxy("100.64.7.7"), proxy("46.91.113.9"))
        outcomes = [r["outcome"] for r in body["results"]]  # type: ignore[index]
        assert outcomes == ["rejected", "rejected", "created"]
        errors = [r.get("error") for r in body["results"]]  # type: ignore[union-attr]
        assert "'List of known IPv4 public DNS resolvers' (policy refuse)" in errors[0]["message"]
        assert errors[0]["field"] == "value"
        assert "RFC 6598 carrier-grade NAT" in errors[1]["message"]

    def test_a_listed_asn_and_a_too_broad_range_are_refused(self, client: TestClient, session: Session) -> None:
        detector, _ = setup(session)
        asn = {**proxy("46.91.113.9"), "value": None, "asn": 64500}
        body = push(client, detector, asn, proxy("46.0.0.0/12"))
        messages = [r["error"]["message"] for r in body["results"]]  # type: ignore[index]
        assert "iana-documentation-asn (RFC 5398)" in messages[0]
        assert "broader than /16" in messages[1]

    def test_a_flagged_address_is_stored_labelled(self, client: TestClient, session: Session) -> None:
        detector, _ = setup(session)
        body = push(client, detector, proxy(AWS))
        result = body["results"][0]  # type: ignore[index]
        assert result["outcome"] == "created"
        assert any("List of known Amazon AWS IP address ranges" in note for note in result["adjusted"])


class TestMatcher:
    def events(self, tmp_path: Path, *addresses: str) -> Path:
        path = tmp_path / "events.ndjson"
        path.write_text("".join(json.dumps({"timestamp": NOW.isoformat(), "source_ip": a}) + "\n" for a in addresses))
        return path

    def test_flagged_and_decayed_indicators_are_not_enforced(
        self, client: TestClient, session: Session, cli_env: str, tmp_path: Path
    ) -> None:
        detector, reader = setup(session)
        # A residential exit last seen 60 h ago: 80·(1 - (60/72)^½) = 7, below its threshold of 50.
        push(
            client,
            detector,
            proxy(AWS),
            proxy("46.91.113.9"),
            proxy("46.91.113.10", confidence=80, kind="residential", age=timedelta(hours=60)),
        )
        events = self.events(tmp_path, AWS, "46.91.113.9", "46.91.113.10")
        result = CliRunner().invoke(cli, ["match", str(events), "--json", "--explain"])
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        assert [m["event_index"] for m in answer["matches"]] == [1]
        assert answer["matches"][0]["score"] == pytest.approx(70.0, abs=0.1)  # 30 d linear: seconds move it
        reasons = {item["reason"] for item in answer["not_enforced"]}
        assert any("Amazon AWS" in r for r in reasons)
        assert any("below the residential-ip threshold 50" in r for r in reasons)
        shown = CliRunner().invoke(cli, ["match", str(events), "--explain"])
        assert "not enforced: indicator--" in shown.stderr

        api = client.post(
            "/api/v1/match",
            json=[json.loads(line) for line in events.read_text().splitlines()],
            headers={"Authorization": reader.bearer["Authorization"]},
        )
        assert [(m["event_index"], round(m["score"])) for m in api.json()["matches"]] == [(1, 70)]
