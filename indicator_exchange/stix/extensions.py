"""The extension definitions our objects name, loaded from ``stix/data/extension_definitions.json``."""

import json
from functools import lru_cache
from importlib import resources
from typing import Any

EXT_PROXY_CONTEXT = "extension-definition--d5a8c3e1-9f2b-4a7d-8e6c-1b0f4c7a2d95"
EXT_LLM_PROMPT = "extension-definition--8c4d3b52-6a0e-4f1b-9b7c-5e2d1a0f3c64"
EXT_HASHED_IDENTIFIER = "extension-definition--2e7f9a10-4b3c-4d8e-a1f5-9c6b0d2e7a38"


@lru_cache(maxsize=1)
def extension_definitions() -> dict[str, dict[str, Any]]:
    data = json.loads(
        resources.files("indicator_exchange.stix").joinpath("data/extension_definitions.json").read_text()
    )
    return {obj["id"]: obj for obj in data.values()}
