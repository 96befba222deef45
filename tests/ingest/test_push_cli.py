"""`indicator-exchange push` says which lines were rejected and why, locally and over HTTP (`--url`)."""

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from indicator_exchange.ingest.parsing import parse_ndjson_line
from indicator_exchange.store.models import IngestRefusal
from tests.fixtures.factories import Key, make_collection, make_key
from tests.fixtures.live_server import live_server
from tests.ingest.test_api import detection

# Line 3 does not parse, and not the way a lone "{" fails: the server must see (and record) this very error.
BAD_JSON = '{"kind": proxy_ip, "value": "46.91.113.9"}'


@pytest.fixture
def detector(session: Session) -> Key:
    collection = make_collection(session, alias="feed")
    key = make_key(session, "det-1", kind="detector", clearance="red", read=[collection], write=[collection])
    session.commit()
    return key


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    path = tmp_path / "detections.ndjson"
    lines = [json.dumps(detection()), "", BAD_JSON, json.dumps(detection(value="not-an-address"))]
    path.write_text("\n".join(lines) + "\n")
    return path


def push(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["push", *args])
    return result.exit_code, result.output


def expected_parse_error() -> str:
    parsed = parse_ndjson_line(BAD_JSON.encode(), 3)
    assert parsed is not None
    assert parsed.error is not None
    return parsed.error


class TestPushRejections:
    def test_json_lists_line_field_and_reason(self, cli_env: str, detector: Key, upload: Path) -> None:
        code, output = push(str(upload), "--as", "det-1", "--collection", "feed", "--json")
        assert code == 1, output
        summary = json.loads(output)
        assert (summary["lines"], summary["created"], summary["rejected"]) == (3, 1, 2)
        rejections: list[dict[str, Any]] = summary["rejections"]
        assert [(r["line"], r["field"]) for r in rejections] == [(3, "body"), (4, "proxy_ip.value")]
        assert rejections[0]["reason"] == expected_parse_error()
        assert rejections[1]["reason"]

    def test_plain_output_names_each_rejected_line(self, cli_env: str, detector: Key, upload: Path) -> None:
        code, output = push(str(upload), "--as", "det-1")
        assert code == 1
        assert f"line 3: rejected (body): {expected_parse_error()}" in output
        assert "line 4: rejected (proxy_ip.value): " in output
        assert "pushed 3 detections: 1 created" in output

    def test_one_detection_is_singular(self, cli_env: str, detector: Key, tmp_path: Path) -> None:
        path = tmp_path / "one.ndjson"
        path.write_text(json.dumps(detection()) + "\n")
        code, output = push(str(path), "--as", "det-1")
        assert (code, output.strip()) == (
            0,
            "pushed 1 detection: 1 created, 0 versioned, 0 unchanged, 0 revoked, 0 rejected",
        )

    def test_remote_push_sends_lines_as_read(self, cli_env: str, detector: Key, upload: Path, session: Session) -> None:
        """The server parses the line itself: the result and the refusal it records carry the real error."""
        with live_server(cli_env) as server:
            code, output = push(
                str(upload), "--url", server.base, "--key", f"{detector.key_id}.{detector.secret}", "--json"
            )
        assert code == 1, output
        rejections = json.loads(output)["rejections"]
        assert [(r["line"], r["field"]) for r in rejections] == [(3, "body"), (4, "proxy_ip.value")]
        assert rejections[0]["reason"] == expected_parse_error()
        session.rollback()
        recorded = session.execute(select(IngestRefusal).order_by(IngestRefusal.id)).scalars().all()
        assert [r.reason for r in recorded if r.field == "body"] == [expected_parse_error()]
