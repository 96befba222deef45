"""JSON Schemas of every public payload, generated from the code into ``schemas/``.

``python -m indicator_exchange.public_schemas`` rewrites them; a test fails when a committed file and the
code disagree, so the published contract never drifts.
"""

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def _detection() -> dict[str, Any]:
    from indicator_exchange.ingest.schemas import Detection

    schema = TypeAdapter(Detection).json_schema()
    schema["title"] = "Detection"
    schema["description"] = "One detection pushed to POST /api/v1/detections (JSON array item or NDJSON line)."
    return schema


def _ingest_result() -> dict[str, Any]:
    from indicator_exchange.ingest.schemas import IngestResult

    return IngestResult.model_json_schema()


def _report() -> dict[str, Any]:
    from indicator_exchange.reports.model import report_json_schema

    return report_json_schema()


def _match_event() -> dict[str, Any]:
    from indicator_exchange.match.events import TrafficEvent

    return TrafficEvent.model_json_schema()


def _match_result() -> dict[str, Any]:
    from indicator_exchange.match.events import Match

    return Match.model_json_schema()


def _match_response() -> dict[str, Any]:
    from indicator_exchange.match.events import MatchResult

    return MatchResult.model_json_schema()


def _detect_clusters() -> dict[str, Any]:
    from indicator_exchange.detect.output import ClustersFile

    return ClustersFile.model_json_schema()


GENERATORS: dict[str, Callable[[], dict[str, Any]]] = {
    "match-event.schema.json": _match_event,
    "match-result.schema.json": _match_result,
    "match-response.schema.json": _match_response,
    "detection.schema.json": _detection,
    "ingest-result.schema.json": _ingest_result,
    "report.schema.json": _report,
    "detect-clusters.schema.json": _detect_clusters,
}


def all_generators() -> dict[str, Callable[[], dict[str, Any]]]:
    return dict(GENERATORS)


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, generate in all_generators().items():
        path = directory / name
        path.write_text(render(generate()), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(f"wrote {path}")
