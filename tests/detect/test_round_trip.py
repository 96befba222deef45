"""detect -> push -> TAXII poll -> match finds the cluster's traffic; no raw prompt or PII is written anywhere."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from tests.detect.traffic import SECRET_WORD, T0, Log, campaign
from tests.fixtures.factories import Key, make_collection, make_key, objects_url
from tests.fixtures.live_server import live_server
from tests.fixtures.tables import stored_rows

BAD_LINES = [
    b"{broken " + SECRET_WORD.encode() + b"\n",
    json.dumps({"timestamp": T0.isoformat(), "prompt_text": 7, "email": f"x.{SECRET_WORD}@mail.example"}).encode()
    + b"\n",
]


@pytest.fixture
def log_file(tmp_path: Path) -> tuple[Path, set[str]]:
    log = Log()
    log.honest_background(80)
    members = set(campaign(log))
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(log.bytes() + b"".join(BAD_LINES))
    return path, members


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


class TestRoundTrip:
    def test_detect_push_poll_match(
        self, cli_env: str, session: Session, client: TestClient, tmp_path: Path, log_file: tuple[Path, set[str]]
    ) -> None:
        path, members = log_file
        collection = make_collection(session, alias="feed")
        detector: Key = make_key(
            session, "det-1", kind="detector", clearance="red", read=[collection], write=[collection]
        )
        session.commit()
        out, clusters, errors = tmp_path / "d.ndjson", tmp_path / "c.json", tmp_path / "e.jsonl"
        code, detect_output = _run(
            "detect",
            str(path),
            "-o",
            str(out),
            "--clusters",
            str(clusters),
            "--errors",
            str(errors),
            "--push",
            "--as",
            "det-1",
            "--collection",
            "feed",
        )
        assert code == 0, detect_output
        pushed = len(out.read_text().splitlines())
        assert pushed > 0
        assert f"pushed {pushed} detections: {pushed} created" in detect_output
        assert "1 cluster of 12 accounts" in detect_output
        rejected = [json.loads(line) for line in errors.read_text().splitlines()]
        assert [r["line"] for r in rejected] == [
            len(path.read_bytes().splitlines()) - 1,
            len(path.read_bytes().splitlines()),
        ]

        polled = client.get(objects_url(collection), headers=detector.basic, params={"match[type]": "indicator"})
        assert polled.status_code == 200, polled.text
        patterns = " ".join(o["pattern"] for o in polled.json()["objects"])
        assert "45.77.10.11" in patterns

        code, match_output = _run("match", str(self._clean(path)))
        assert code == 0, match_output
        matches = [json.loads(line) for line in match_output.splitlines() if line.startswith("{")]
        events = [json.loads(line) for line in self._clean(path).read_text().splitlines()]
        matched_accounts = {events[m["event_index"]]["account_id"] for m in matches}
        assert matched_accounts == members
        campaign_events = {i for i, e in enumerate(events) if e.get("account_id") in members}
        assert {m["event_index"] for m in matches} == campaign_events

        self._nothing_secret(
            session, [detect_output, match_output, out.read_text(), clusters.read_text(), errors.read_text()]
        )

    def test_detect_pushes_to_a_running_server(
        self, cli_env: str, session: Session, client: TestClient, tmp_path: Path, log_file: tuple[Path, set[str]]
    ) -> None:
        """``--url URL --key KEY``: the detections go over HTTP to a real ``serve`` and land in its collection."""
        path, _ = log_file
        collection = make_collection(session, alias="remote-feed")
        detector: Key = make_key(
            session, "det-remote", kind="detector", clearance="red", read=[collection], write=[collection]
        )
        session.commit()
        out = tmp_path / "d.ndjson"
        with live_server(cli_env) as server:
            code, output = _run(
                "detect",
                str(path),
                "-o",
                str(out),
                "--url",
                server.base,
                "--key",
                f"{detector.key_id}.{detector.secret}",
            )
        assert code == 0, output
        pushed = len(out.read_text().splitlines())
        assert pushed > 0
        assert f"pushed {pushed} detections: {pushed} created" in output
        polled = client.get(objects_url(collection), headers=detector.basic, params={"match[type]": "indicator"})
        assert polled.status_code == 200, polled.text
        assert "45.77.10.11" in " ".join(o["pattern"] for o in polled.json()["objects"])
        self._nothing_secret(session, [output, out.read_text()])

    @staticmethod
    def _clean(path: Path) -> Path:
        """The log without its bad lines (``match`` refuses a file with any)."""
        clean = path.with_name("clean.jsonl")
        if not clean.exists():
            with path.open("rb") as lines:
                clean.write_bytes(b"".join(line for line in lines if line not in BAD_LINES))
        return clean

    @staticmethod
    def _nothing_secret(session: Session, texts: list[str]) -> None:
        """The word every prompt and email of the log carries appears in no output, message or table."""
        for blob in texts:
            assert SECRET_WORD not in blob.lower()
        dumped = stored_rows(session)
        assert dumped
        assert SECRET_WORD not in "\n".join(dumped).lower()
