"""The sharing report against a scenario whose figures are known, in every format, over HTTP and the CLI."""

import io
import json
import re

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli_app
from indicator_exchange.settings import Settings, get_settings
from tests.reports.figures import assert_csv_figures, assert_json_figures
from tests.reports.scenario import Scenario

REPORT_URL = "/api/v1/reports/sharing"


def _window(scenario: Scenario) -> dict[str, str]:
    return {"from": scenario.start.isoformat(), "to": scenario.end.isoformat()}


def _report(client: TestClient, scenario: Scenario, key: str = "compliance", **params: object):
    return client.get(REPORT_URL, headers=scenario.keys[key].bearer, params={**_window(scenario), **params})


class TestReportFigures:
    def test_json_report_has_the_scenario_figures(self, client: TestClient, scenario: Scenario) -> None:
        response = _report(client, scenario, format="json")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-report-marking"] == scenario.marking
        assert_json_figures(response.json(), scenario)

    def test_admin_gets_the_same_report(self, client: TestClient, scenario: Scenario) -> None:
        response = _report(client, scenario, key="admin", format="json")
        assert response.status_code == 200, response.text
        assert_json_figures(response.json(), scenario)

    def test_partner_filter_keeps_only_that_partner(self, client: TestClient, scenario: Scenario) -> None:
        report = _report(client, scenario, partner="lab-b").json()
        assert {row["partner"] for row in report["shared"]["rows"]} == {"lab-b"}
        assert sum(row["denied"] for row in report["shared"]["rows"]) == 2
        assert report["shared"]["objects_served"] == 6
        assert report["received"]["rows"] == []
        assert [k["principal"] for k in report["exceptions"]["keys_created"]] == ["lab-b", "lab-b"]
        assert report["exceptions"]["refused_detections"] == 0  # refusals are the detectors'
        assert report["exceptions"]["rejected_objects"] == 0
        assert report["published"]["totals"] == scenario.totals  # our publishing is not a partner's

    def test_collection_filter_by_alias(self, client: TestClient, scenario: Scenario) -> None:
        report = _report(client, scenario, collection="inbox").json()
        assert report["filters"]["collections"] == [str(scenario.inbox)]
        assert report["published"]["totals"] == {"created": 0, "versioned": 0, "revoked": 0, "expired": 0}
        assert report["received"]["objects"] == 3
        assert {row["collection_id"] for row in report["shared"]["rows"]} <= {str(scenario.inbox)}
        assert report["marking"] == "TLP:AMBER"  # the highest of lab-a's pushed objects

    def test_clearance_bounds_figures_and_marking(self, client: TestClient, scenario: Scenario) -> None:
        report = _report(client, scenario, key="compliance-amber").json()
        assert report["filters"]["clearance"] == "amber"
        assert report["marking"] == "TLP:AMBER"
        # The expired account pattern (AMBER+STRICT) is above the clearance: it is neither counted nor marks.
        assert report["published"]["totals"] == {"created": 9, "versioned": 2, "revoked": 1, "expired": 0}

    def test_empty_window_is_clear_and_zero(self, client: TestClient, scenario: Scenario) -> None:
        report = _report(client, scenario, **{"from": "2020-01-01", "to": "2020-01-31"}).json()
        assert report["marking"] == "TLP:CLEAR"
        assert report["published"]["totals"] == {"created": 0, "versioned": 0, "revoked": 0, "expired": 0}
        assert report["activity"]["bucket"] == "day"
        assert len(report["activity"]["points"]) == 31


class TestReportFormats:
    @pytest.mark.parametrize("backend", ["sqlite"])
    def test_csv_has_the_same_figures(self, client: TestClient, scenario: Scenario) -> None:
        response = _report(client, scenario, format="csv")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        assert_csv_figures(response.text, scenario)

    @pytest.mark.parametrize("backend", ["sqlite"])
    def test_pdf_text_pages_and_marking_on_every_page(self, client: TestClient, scenario: Scenario) -> None:
        response = _report(client, scenario, format="pdf")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        reader = PdfReader(io.BytesIO(response.content))
        assert 2 <= len(reader.pages) <= 4
        for number, page in enumerate(reader.pages, start=1):
            height = float(page.mediabox.height)
            placed: list[float] = []

            def visit(text: str, _cm: object, tm: list[float], _font: object, _size: object, placed=placed) -> None:
                if scenario.marking in text:
                    placed.append(tm[5])

            text = page.extract_text(visitor_text=visit)
            assert text.count(scenario.marking) >= 4, f"page {number}"  # left and right, header and footer
            assert any(y > height - 60 for y in placed), f"page {number} has no marking in its header"
            assert any(y < 60 for y in placed), f"page {number} has no marking in its footer"
            assert f"page {number}" in text
        text = "\n".join(page.extract_text() for page in reader.pages)
        totals = scenario.totals
        for label, value in (
            ("Indicators created", totals["created"]),
            ("Indicators versioned", totals["versioned"]),
            ("Indicators revoked", totals["revoked"]),
            ("Indicators expired", totals["expired"]),
            ("Objects served to partners", 22),
            ("Requests denied", 3),
            ("Objects received", 3),
            ("Sightings received", 1),
            ("Objects rejected", 1),
            ("Detections refused", 1),
        ):
            assert re.search(rf"{label}\s+{value}\b", text), label
        assert "Hydra-7" in text
        assert "lab-a" in text

    @pytest.mark.parametrize("backend", ["sqlite"])
    def test_html_report_is_self_contained(self, client: TestClient, scenario: Scenario) -> None:
        response = _report(client, scenario, format="html")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert html.count("<svg") >= 2  # the charts, inline
        assert 'id="marking-header"' in html
        assert 'id="marking-footer"' in html
        assert "<script" not in html
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from elsewhere
        assert "<metadata>" not in html


class TestReportAccess:
    @pytest.mark.parametrize("backend", ["sqlite"])
    @pytest.mark.parametrize("who", ["lab-a", "det-1"])
    def test_partners_and_detectors_are_refused(self, client: TestClient, scenario: Scenario, who: str) -> None:
        response = _report(client, scenario, key=who)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == "Not permitted"

    @pytest.mark.parametrize("backend", ["sqlite"])
    def test_anonymous_is_asked_to_authenticate(self, client: TestClient, scenario: Scenario) -> None:
        response = client.get(REPORT_URL, params=_window(scenario))
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"error", "detail"}

    @pytest.mark.parametrize("backend", ["sqlite"])
    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"format": "docx"}, "format"),
            ({"from": "yesterday"}, "not a date"),
            ({"collection": "nope"}, "nope"),
            ({"partner": "nobody"}, "nobody"),
        ],
    )
    def test_bad_parameters_are_plain_json_errors(
        self, client: TestClient, scenario: Scenario, params: dict[str, str], message: str
    ) -> None:
        response = _report(client, scenario, **params)
        assert response.status_code in (400, 404), response.text
        assert message in response.json()["detail"]


class TestReportCli:
    @pytest.mark.parametrize("backend", ["sqlite"])
    @pytest.mark.parametrize("fmt", ["json", "csv", "pdf", "html"])
    def test_report_command_writes_every_format(
        self,
        client: TestClient,
        scenario: Scenario,
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path,
        fmt: str,
    ) -> None:
        monkeypatch.setenv("IX_DATABASE_URL", settings.database_url)
        monkeypatch.setenv("IX_ORGANISATION_NAME", settings.organisation_name)
        get_settings.cache_clear()
        target = tmp_path / f"report.{fmt}"
        try:
            args = [
                "report",
                "--from",
                scenario.start.isoformat(),
                "--to",
                scenario.end.isoformat(),
                "--format",
                fmt,
                "--output",
                str(target),
            ]
            result = CliRunner().invoke(cli_app, args)
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert scenario.marking in result.output
        body = target.read_bytes()
        if fmt == "json":
            assert_json_figures(json.loads(body), scenario)
        elif fmt == "csv":
            assert_csv_figures(body.decode(), scenario)
        elif fmt == "pdf":
            reader = PdfReader(io.BytesIO(body))
            assert all(scenario.marking in page.extract_text() for page in reader.pages)
        else:
            assert f'data-figure="published.totals.created">{scenario.totals["created"]}<' in body.decode()
