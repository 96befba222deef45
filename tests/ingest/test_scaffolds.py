"""Public scaffolds are refused, exactly or as near-duplicates; the list is configurable (IX_SCAFFOLD_ALLOWLIST)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from indicator_exchange.ingest import convert
from indicator_exchange.settings import Settings
from indicator_exchange.stix.fingerprint import fingerprint_prompt, minhash_similarity

NOW = datetime(2026, 11, 20, tzinfo=UTC)
KEY, KEY_ID = b"scaffold-test-key", "scaffold-test"
EXTRA = (
    "You are the Acme internal code reviewer. Read the diff below, list every bug you find with its line number, "
    "and suggest a fix for each one in a fenced code block."
)


def _prompt(text: str) -> dict[str, object]:
    return {
        "kind": "prompt_signature",
        "detector": "t",
        "first_seen": "2026-11-19T00:00:00Z",
        "last_seen": "2026-11-20T00:00:00Z",
        "confidence": 50,
        "tlp": "amber",
        "prompt_text": text,
        "capability": "other",
    }


def _plan(text: str, settings: Settings) -> convert.Planned:
    return convert.plan(convert.validate(_prompt(text)), settings=settings, now=NOW)


@pytest.fixture
def allowlist(tmp_path: Path) -> Path:
    path = tmp_path / "scaffolds.json"
    path.write_text(json.dumps({"scaffolds": {"acme-reviewer": EXTRA}}))
    return path


def test_the_vector_match_agrees_with_minhash_similarity() -> None:
    scaffolds = convert._scaffolds(KEY, KEY_ID, None)
    texts = convert.scaffold_texts(None)
    for name, text in texts.items():
        words = text.split()
        for variant in (text, " ".join(words[:-1]), " ".join(words[: len(words) // 3]), "unrelated words " * 9):
            fingerprint = fingerprint_prompt(variant, key=KEY, key_id=KEY_ID)
            expected = [
                other
                for other, other_text in texts.items()
                if fingerprint_prompt(other_text, key=KEY, key_id=KEY_ID).sha256 == fingerprint.sha256
                or minhash_similarity(fingerprint_prompt(other_text, key=KEY, key_id=KEY_ID), fingerprint)
                >= convert.SCAFFOLD_SIMILARITY
            ]
            assert scaffolds.match(fingerprint) == (expected[0] if expected else None), (name, variant)


def test_a_near_duplicate_of_a_configured_scaffold_is_refused(allowlist: Path) -> None:
    settings = Settings(database_url="sqlite://", scaffold_allowlist=str(allowlist))
    with pytest.raises(convert.Refused, match="acme-reviewer"):
        _plan(EXTRA.replace("Acme", "Apex"), settings)
    default = Settings(database_url="sqlite://")
    assert _plan(EXTRA.replace("Acme", "Apex"), default).conversion.indicators  # only configured ones refuse


def test_a_broken_allowlist_stops_the_settings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scaffolds": ["not", "a", "mapping"]}))
    with pytest.raises(ValidationError, match="must hold"):
        Settings(database_url="sqlite://", scaffold_allowlist=str(bad))
    with pytest.raises(ValidationError, match="not a readable JSON object"):
        Settings(database_url="sqlite://", scaffold_allowlist=str(tmp_path / "missing.json"))
