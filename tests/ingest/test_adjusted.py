"""Ingestion says where it published otherwise than a line asked (`adjusted`), over HTTP and in `push`."""

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from indicator_exchange.ingest.schemas import IngestResult
from indicator_exchange.public_schemas import SCHEMA_DIR
from indicator_exchange.stix.extensions import EXT_PROXY_CONTEXT
from indicator_exchange.stix.markings import Tlp
from tests.fixtures.factories import Key, make_collection, make_key
from tests.fixtures.live_server import live_server
from tests.ingest.test_api import detection, objects_of, push, setup, without_proxy


def identifiers(**overrides: Any) -> dict[str, Any]:
    item = without_proxy(detection(kind="account_pattern", tlp="green", cluster=None, **overrides))
    item["identifiers"] = [{"type": "email", "value": "someone@example.org"}]
    return item


def only_line(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    IngestResult.model_validate(response.json())  # the answer keeps to schemas/ingest-result.schema.json
    (line,) = response.json()["results"]
    assert line["outcome"] != "rejected", line
    return dict(line)


class TestRaisedByARule:
    def test_hashed_identifiers_say_their_tlp_was_raised(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = setup(session)
        line = only_line(push(client, detector, [identifiers()]))
        (message,) = line["adjusted"]
        assert message.startswith("tlp: raised from green to amber+strict: hashed identifiers")
        (stored,) = objects_of(client, detector, collection, line["stix_ids"][0])
        assert stored["object_marking_refs"] == [Tlp.AMBER_STRICT.marking_id]

    def test_a_green_clusters_campaign_says_it_is_amber(self, client: TestClient, session: Session) -> None:
        _, detector, _ = setup(session)
        line = only_line(push(client, detector, [detection(tlp="green")]))
        assert line["adjusted"] == [
            "tlp: the campaign of cluster hydra-test-A is published at amber, not green: a campaign links a "
            "cluster's indicators and is never shared below TLP:AMBER"
        ]

    def test_what_is_published_as_asked_says_nothing(self, client: TestClient, session: Session) -> None:
        _, detector, _ = setup(session)
        assert only_line(push(client, detector, [detection()]))["adjusted"] == []
        assert (
            only_line(push(client, detector, [detection(tlp="red", cluster=None, value="46.112.100.9")]))["adjusted"]
            == []
        )
        assert only_line(push(client, detector, [detection()]))["adjusted"] == []  # a repeat: unchanged


class TestKeptByAMerge:
    def test_a_stored_mobile_proxy_stays_mobile(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = setup(session)
        first = only_line(push(client, detector, [detection(proxy_kind="mobile")]))
        assert first["adjusted"] == []
        again = only_line(push(client, detector, [detection(proxy_kind="residential")]))
        assert again["stix_ids"] == first["stix_ids"]
        assert again["adjusted"] == [
            "proxy_kind: the stored indicator stays mobile, not residential: its first classification is kept; "
            "residential-proxy joins its labels"
        ]
        latest = objects_of(client, detector, collection, first["stix_ids"][0])[-1]
        assert latest["extensions"][EXT_PROXY_CONTEXT]["proxy_kind"] == "mobile"

    def test_two_lines_of_one_request_fold_and_say_it(self, client: TestClient, session: Session) -> None:
        _, detector, _ = setup(session)
        response = push(client, detector, [detection(proxy_kind="mobile"), detection(proxy_kind="residential")])
        lines = response.json()["results"]
        assert lines[0]["adjusted"] == []
        assert [m.split(":")[0] for m in lines[1]["adjusted"]] == ["proxy_kind"]

    def test_a_stored_indicator_keeps_its_tlp(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = setup(session)
        first = only_line(push(client, detector, [detection(tlp="green", cluster=None)]))
        again = only_line(push(client, detector, [detection(tlp="red", cluster=None, confidence=90)]))
        assert again["outcome"] == "versioned"
        (message,) = again["adjusted"]
        assert message.startswith("tlp: the stored indicator stays green, not red: a new version never changes")
        latest = objects_of(client, detector, collection, first["stix_ids"][0])[-1]
        assert latest["object_marking_refs"] == [Tlp.GREEN.marking_id]

    def test_a_stored_campaign_keeps_its_tlp(self, client: TestClient, session: Session) -> None:
        _, detector, _ = setup(session)
        only_line(push(client, detector, [detection()]))  # amber indicator, amber campaign
        line = only_line(push(client, detector, [detection(value="46.112.100.5", tlp="red")]))
        assert line["outcome"] == "created"  # a new indicator, at red as asked; the campaign is the stored one
        assert line["adjusted"] == [
            "tlp: the stored campaign stays amber, not red: a new version never changes an object's marking"
        ]


class TestDocumented:
    def test_the_detection_schema_states_the_rules(self) -> None:
        schema = json.loads((SCHEMA_DIR / "detection.schema.json").read_text())
        properties = {name: p for d in schema["$defs"].values() for name, p in d.get("properties", {}).items()}
        assert "amber+strict" in properties["tlp"]["description"]
        assert "'adjusted'" in properties["tlp"]["description"]
        assert "first classification wins" in properties["proxy_kind"]["description"]
        assert "AMBER+STRICT" in properties["identifiers"]["description"]
        result = json.loads((SCHEMA_DIR / "ingest-result.schema.json").read_text())
        assert "adjusted" in result["$defs"]["DetectionOutcome"]["properties"]


@pytest.fixture
def cli_detector(session: Session) -> Key:
    collection = make_collection(session, alias="feed")
    key = make_key(session, "det-1", kind="detector", clearance="red", read=[collection], write=[collection])
    session.commit()
    return key


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    """Line 1 publishes as asked; line 2 has its TLP raised; line 4 keeps line 1's proxy kind."""
    path = tmp_path / "detections.ndjson"
    lines = [
        json.dumps(detection(proxy_kind="mobile")),
        json.dumps(identifiers()),
        "",
        json.dumps(detection(proxy_kind="residential", confidence=70)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class TestPushCli:
    def test_json_lists_each_adjusted_line(self, cli_env: str, cli_detector: Key, upload: Path) -> None:
        result = CliRunner().invoke(cli, ["push", str(upload), "--as", "det-1", "--json"])
        assert result.exit_code == 0, result.output  # an adjustment is said, not a failure
        adjustments = json.loads(result.stdout)["adjustments"]
        assert [(a["line"], [m.split(":")[0] for m in a["adjusted"]]) for a in adjustments] == [
            (2, ["tlp"]),
            (4, ["proxy_kind"]),
        ]

    def test_plain_output_names_each_adjusted_line(self, cli_env: str, cli_detector: Key, upload: Path) -> None:
        result = CliRunner().invoke(cli, ["push", str(upload), "--as", "det-1"])
        assert result.exit_code == 0, result.output
        assert "line 2: adjusted: tlp: raised from green to amber+strict" in result.stderr
        assert "line 4: adjusted: proxy_kind: the stored indicator stays mobile, not residential" in result.stderr
        assert "line 1:" not in result.stderr

    def test_remote_push_numbers_them_like_the_file(self, cli_env: str, cli_detector: Key, upload: Path) -> None:
        with live_server(cli_env) as server:
            bearer = f"{cli_detector.key_id}.{cli_detector.secret}"
            result = CliRunner().invoke(cli, ["push", str(upload), "--url", server.base, "--key", bearer, "--json"])
        assert result.exit_code == 0, result.output
        assert [a["line"] for a in json.loads(result.stdout)["adjustments"]] == [2, 4]
