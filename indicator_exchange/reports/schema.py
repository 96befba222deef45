"""Write ``schemas/report.schema.json`` from the report model: ``python -m indicator_exchange.reports.schema``.

A test fails when the committed file and the model disagree, so the published schema never drifts.
"""

import json
import sys
from pathlib import Path

from indicator_exchange.reports.model import report_json_schema

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "report.schema.json"


def schema_text() -> str:
    return json.dumps(report_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    target = Path((argv or sys.argv[1:] or [str(SCHEMA_PATH)])[0])
    target.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
