"""Hashed identifiers: a phone or card a cluster's accounts share becomes an account_pattern ``hmac``; the raw
value is hashed as the line is read and appears in no output."""

import io
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from indicator_exchange.detect.reader import Event, LineError, read_events
from indicator_exchange.settings import Settings
from indicator_exchange.stix.identifiers import hmac_identifier
from tests.detect.traffic import Log, campaign, detect, flagged
from tests.fixtures.factories import Key, make_collection, make_key, objects_url
from tests.fixtures.tables import stored_rows

PHONE = "+44 7700 900123"
CARD = "card-fp-quokka-31337"
RAW = ("7700 900123", "7700900123", "quokka-31337")
"""What must never be written: the raw phone (as given or normalised) and the card."""


def _digest(kind: str, value: str) -> str:
    return hmac_identifier(Settings().community_key_bytes, kind, value)


def _give(log: Log, accounts: set[str], identifiers: dict[str, str]) -> None:
    for event in log.events:
        if event["account_id"] in accounts:
            event["identifiers"] = identifiers


def _hmacs(outcome: Any) -> list[tuple[str, str]]:
    return [
        (i.type, i.hmac)
        for d in outcome.detections
        if d.kind == "account_pattern" and d.identifiers
        for i in d.identifiers
    ]


def _crafted() -> tuple[Log, list[str]]:
    log = Log()
    log.honest_background()
    members = campaign(log)
    _give(log, set(members[:6]), {"phone": PHONE, "payment-instrument": CARD})
    return log, members


class TestReader:
    def test_identifiers_are_kept_as_hmacs_only(self) -> None:
        line = {"timestamp": "2026-11-30T06:00:00Z", "account_id": "a", "identifiers": {"phone": PHONE}}
        plain = {"timestamp": "2026-11-30T06:00:01Z", "account_id": "b"}
        raw = b"".join(json.dumps(x).encode() + b"\n" for x in (line, plain))
        key = Settings().community_key_bytes
        first, second = read_events(io.BytesIO(raw), max_line_bytes=4096, max_lag_seconds=0, key=key)
        assert isinstance(first, Event)  # neither line is dropped
        assert isinstance(second, Event)
        assert first.identifiers == (f"phone:{_digest('phone', PHONE)}",)
        assert second.identifiers == ()
        assert not any(r in repr(first) for r in RAW)
        (unkeyed,) = read_events(io.BytesIO(raw[: raw.index(b"\n") + 1]), max_line_bytes=4096, max_lag_seconds=0)
        assert isinstance(unkeyed, Event)
        assert unkeyed.identifiers == ()

    def test_bad_identifiers_are_a_line_error_that_does_not_quote_them(self) -> None:
        lines = [
            {"timestamp": "2026-11-30T06:00:00Z", "account_id": "a", "identifiers": {"ssn": "078-05-1120"}},
            {"timestamp": "2026-11-30T06:00:00Z", "account_id": "a", "identifiers": {"phone": 7700900123}},
        ]
        raw = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
        key = Settings().community_key_bytes
        found = list(read_events(io.BytesIO(raw), max_line_bytes=4096, max_lag_seconds=0, key=key))
        assert [type(x) for x in found] == [LineError, LineError]
        assert [x.line for x in found if isinstance(x, LineError)] == [1, 2]
        reasons = " ".join(x.reason for x in found if isinstance(x, LineError))
        assert reasons.count("identifiers") == 2
        assert "078-05" not in reasons
        assert "7700900123" not in reasons

    def test_a_phone_that_is_not_a_phone_is_a_line_error_with_its_line_number(self) -> None:
        lines = [
            {"timestamp": "2026-11-30T06:00:00Z", "account_id": "a", "identifiers": {"phone": PHONE}},
            {"timestamp": "2026-11-30T06:00:00Z", "account_id": "b", "identifiers": {"phone": "call me at 5"}},
            {"timestamp": "2026-11-30T06:00:00Z", "account_id": "c", "identifiers": {"phone": "abc"}},
            {"timestamp": "2026-11-30T06:00:00Z", "account_id": "d", "identifiers": {"phone": "12345"}},
            {"timestamp": "2026-11-30T06:00:01Z", "account_id": "e"},
        ]
        raw = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
        key = Settings().community_key_bytes
        found = list(read_events(io.BytesIO(raw), max_line_bytes=4096, max_lag_seconds=0, key=key))
        assert [type(x) for x in found] == [Event, LineError, LineError, LineError, Event]  # none dropped
        errors = [x for x in found if isinstance(x, LineError)]
        assert [x.line for x in errors] == [2, 3, 4]
        assert all(x.reason.startswith("identifiers: ") and "phone" in x.reason for x in errors)
        assert "digits" in errors[2].reason
        assert not any(v in x.reason for x in errors for v in ("call me", "abc", "12345"))


class TestPublished:
    def test_a_phone_and_card_the_cluster_shares_are_published_as_hmacs(self) -> None:
        log, members = _crafted()
        outcome = detect(log.bytes())
        assert flagged(outcome) == set(members)
        assert sorted(_hmacs(outcome)) == sorted(
            [("payment-instrument", _digest("payment-instrument", CARD)), ("phone", _digest("phone", PHONE))]
        )
        (report,) = outcome.reports
        assert {(i.accounts, i.accounts_total, i.published) for i in report.identifiers} == {(6, 6, True)}
        written = "\n".join(
            [outcome.clusters_file.model_dump_json(), *(d.model_dump_json() for d in outcome.detections)]
        )
        assert not any(r in written for r in RAW)

    def test_an_honest_family_sharing_a_phone_is_not_a_cluster(self) -> None:
        log = Log()
        log.honest_background()
        family = {f"honest{n}-0000" for n in range(4)}
        assert family <= log.groups["honest"]
        _give(log, family, {"phone": PHONE})
        outcome = detect(log.bytes())
        assert outcome.reports == []
        assert outcome.detections == []
        assert outcome.clusters_file.summary.events == len(log.events)  # their lines were read, not dropped

    def test_too_few_members_or_a_phone_honest_accounts_share_too_is_not_published(self) -> None:
        log = Log()
        log.honest_background()
        members = campaign(log)
        _give(log, set(members[:2]), {"phone": PHONE})  # two members: below identifier_min_accounts
        shared = set(members[2:5]) | {f"honest{n}-0000" for n in range(2)}  # 3 of 5 holders: below the share
        _give(log, shared, {"payment-instrument": CARD})
        outcome = detect(log.bytes())
        assert flagged(outcome) == set(members)
        assert _hmacs(outcome) == []
        (report,) = outcome.reports
        assert {(i.accounts, i.accounts_total) for i in report.identifiers} == {(2, 2), (3, 5)}
        assert _hmacs(detect(log.bytes(), identifier_min_accounts=2)) == [("phone", _digest("phone", PHONE))]


def test_detect_push_match_finds_the_shared_phone(
    cli_env: str, session: Session, client: TestClient, tmp_path: Path
) -> None:
    log, members = _crafted()
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(log.bytes())
    collection = make_collection(session, alias="feed")
    detector: Key = make_key(session, "det-1", kind="detector", clearance="red", read=[collection], write=[collection])
    session.commit()
    out, clusters = tmp_path / "d.ndjson", tmp_path / "c.json"
    runner = CliRunner()
    args = ["detect", str(path), "-o", str(out), "--clusters", str(clusters), "--push", "--as", "det-1"]
    result = runner.invoke(cli, [*args, "--collection", "feed"])
    assert result.exit_code == 0, result.output
    written = out.read_text() + clusters.read_text() + result.output
    assert not any(r in written for r in RAW)
    assert _digest("phone", PHONE) in out.read_text()

    polled = client.get(objects_url(collection), headers=detector.basic, params={"match[type]": "indicator"})
    assert polled.status_code == 200, polled.text
    hashed = {o["id"] for o in polled.json()["objects"] if "x-hashed-identifier" in o["pattern"]}
    assert len(hashed) == 2  # the phone's indicator and the card's

    matched = runner.invoke(cli, ["match", str(path)])
    assert matched.exit_code == 0, matched.output
    matches = [json.loads(line) for line in matched.output.splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in path.read_text().splitlines()]
    by_identifier = {m["event_index"] for m in matches if m["indicator_id"] in hashed}
    assert by_identifier == {i for i, e in enumerate(events) if "identifiers" in e}
    assert {events[i]["account_id"] for i in by_identifier} == set(members[:6])
    assert not any(r in matched.output for r in RAW)
    session.commit()  # a fresh snapshot: the rows the CLI committed
    stored = stored_rows(session)
    assert any(_digest("phone", PHONE) in row for row in stored)  # what is searched below was stored
    assert not any(r in row for r in RAW for row in stored)
