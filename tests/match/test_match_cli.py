"""`indicator-exchange match` reports each malformed event (line, field, reason) and matches the rest."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from indicator_exchange.ingest.parsing import parse_ndjson_line
from indicator_exchange.match.events import MatchResult
from indicator_exchange.settings import get_settings
from tests.fixtures.factories import make_collection, make_key
from tests.ingest.test_api import detection

AT = "2026-03-01T12:00:00+00:00"
BAD_JSON = '{"timestamp": "2026-03-01T12:00:00+00:00", source_ip}'


@pytest.fixture
def loaded(db_url: str, monkeypatch: pytest.MonkeyPatch, session: Session, tmp_path: Path) -> Iterator[Path]:
    """One indicator (46.91.113.57) stored through `push`, and an events file whose lines 2, 4 and 6 are bad."""
    monkeypatch.setenv("IX_DATABASE_URL", db_url)
    get_settings.cache_clear()
    collection = make_collection(session)
    make_key(session, "det-1", kind="detector", clearance="red", read=[collection], write=[collection])
    session.commit()
    detections = tmp_path / "detections.ndjson"
    detections.write_text(json.dumps(detection()) + "\n")
    assert CliRunner().invoke(cli, ["push", str(detections), "--as", "det-1"]).exit_code == 0
    events = tmp_path / "events.ndjson"
    lines = [
        json.dumps({"timestamp": AT, "event_id": "first", "source_ip": "46.91.113.57"}),
        BAD_JSON,
        "",
        json.dumps({"timestamp": "soon", "source_ip": "46.91.113.57"}),
        json.dumps({"timestamp": AT, "event_id": "last", "source_ip": "46.91.113.57"}),
        json.dumps({"timestamp": AT, "source_ip": "46.91.113.57", "colour": "blue"}),
    ]
    events.write_text("\n".join(lines) + "\n")
    yield events
    get_settings.cache_clear()


def match(*args: str) -> Result:
    return CliRunner().invoke(cli, ["match", *args])


def parse_error() -> str:
    parsed = parse_ndjson_line(BAD_JSON.encode(), 2)
    assert parsed is not None
    assert parsed.error is not None
    return parsed.error


class TestMatchRejections:
    def test_rows_for_the_good_events_and_exit_1(self, loaded: Path) -> None:
        result = match(str(loaded))
        assert result.exit_code == 1, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        # event_index is the position among the input's events (blank lines skipped), as the API counts.
        assert [(r["event_index"], r["event_id"]) for r in rows] == [(0, "first"), (3, "last")]
        assert f"line 2: rejected (body): {parse_error()}" in result.stderr
        assert "line 4: rejected (timestamp): " in result.stderr
        assert "line 6: rejected (colour): Extra inputs are not permitted" in result.stderr
        assert "2 events, 3 rejected, 2 matches against 1 indicator" in result.stderr

    def test_json_carries_matches_and_every_rejection(self, loaded: Path) -> None:
        result = match(str(loaded), "--json")
        assert result.exit_code == 1, result.output
        answer = MatchResult.model_validate_json(result.stdout)
        assert (answer.events, answer.rejected, answer.indicators) == (2, 3, 1)
        assert [(r.line, r.event_index, r.field) for r in answer.rejections] == [
            (2, 1, "body"),
            (4, 2, "timestamp"),
            (6, 4, "colour"),
        ]
        assert answer.rejections[0].reason == parse_error()
        assert "soon" not in result.stdout  # reasons never echo the values
        assert [m.event_id for m in answer.matches] == ["first", "last"]

    def test_all_good_events_exit_0(self, loaded: Path, tmp_path: Path) -> None:
        good = tmp_path / "good.ndjson"
        good.write_text(loaded.read_text().splitlines()[0] + "\n")
        result = match(str(good), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["rejections"] == []

    def test_json_excludes_csv(self, loaded: Path) -> None:
        result = match(str(loaded), "--json", "--format", "csv")
        assert result.exit_code == 2
        assert "excludes --format csv" in result.output
