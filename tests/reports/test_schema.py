"""schemas/report.schema.json is generated from the report model, and real reports validate against it."""

import json

import jsonschema
import pytest
from fastapi.testclient import TestClient

from indicator_exchange.public_schemas import SCHEMA_DIR, render
from indicator_exchange.reports.model import report_json_schema
from tests.reports.scenario import Scenario

SCHEMA_PATH = SCHEMA_DIR / "report.schema.json"


class TestReportSchema:
    def test_published_schema_is_up_to_date(self) -> None:
        assert SCHEMA_PATH.read_text(encoding="utf-8") == render(report_json_schema()), (
            "schemas/report.schema.json is out of date: run `python -m indicator_exchange.public_schemas`"
        )

    def test_schema_is_a_valid_json_schema(self) -> None:
        jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))

    @pytest.mark.parametrize("backend", ["sqlite"])
    def test_a_real_report_validates(self, client: TestClient, scenario: Scenario) -> None:
        response = client.get(
            "/api/v1/reports/sharing",
            headers=scenario.keys["admin"].bearer,
            params={"from": scenario.start.isoformat(), "to": scenario.end.isoformat()},
        )
        schema = json.loads(SCHEMA_PATH.read_text())
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(response.json())]
        assert errors == []
        broken = {**response.json(), "marking": 3}
        assert list(validator.iter_errors(broken))
