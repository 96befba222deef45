"""The committed JSON Schemas in schemas/ are exactly what the code generates."""

import json

import pytest

from indicator_exchange.public_schemas import SCHEMA_DIR, all_generators, render


@pytest.mark.parametrize("name", sorted(all_generators()))
def test_committed_schema_matches_the_code(name: str) -> None:
    path = SCHEMA_DIR / name
    assert path.exists(), f"run: python -m indicator_exchange.public_schemas ({name} is missing)"
    assert path.read_text() == render(all_generators()[name]()), f"{name} is stale; regenerate it"


def test_detection_schema_covers_the_three_kinds() -> None:
    schema = json.loads((SCHEMA_DIR / "detection.schema.json").read_text())
    kinds = {d["properties"]["kind"]["const"] for d in schema["$defs"].values() if "kind" in d.get("properties", {})}
    assert kinds == {"proxy_ip", "prompt_signature", "account_pattern"}
