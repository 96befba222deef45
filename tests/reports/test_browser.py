"""The HTML report and the dashboard in a real browser (headless Chromium): figures, markings, no console errors."""

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from tests.reports.scenario import Scenario

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


class Console:
    """Collects what a page reports as errors: console errors, uncaught exceptions, failed requests."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.downloads: set[str] = set()
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("download", lambda download: self.downloads.add(download.url))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status} {r.url}"))

    def _failed(self, request: Any) -> None:
        # A navigation that turns into a download is aborted by design ("net::ERR_ABORTED").
        if request.failure == "net::ERR_ABORTED" and "/ui/reports/" in request.url:
            return
        self.errors.append(f"request failed: {request.url} ({request.failure})")


def _figure(page: Any, name: str) -> str:
    return str(page.locator(f'[data-figure="{name}"]').first.inner_text()).strip()


def _screenshot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class TestHtmlReportInBrowser:
    def test_figures_markings_and_no_console_errors(
        self, client: TestClient, scenario: Scenario, chromium: Any, tmp_path: Path
    ) -> None:
        response = client.get(
            "/api/v1/reports/sharing",
            headers=scenario.keys["compliance"].bearer,
            params={"from": scenario.start.isoformat(), "to": scenario.end.isoformat(), "format": "html"},
        )
        assert response.status_code == 200
        report_file = tmp_path / "report.html"
        report_file.write_text(response.text)
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        console = Console(page)
        page.goto(report_file.as_uri())
        assert page.title().startswith(scenario.marking)
        for name, value in {
            **{f"published.totals.{k}": v for k, v in scenario.totals.items()},
            "shared.objects_served": 22,
            "shared.denied": 3,
            "received.objects": 3,
            "received.sightings.received": 1,
            "exceptions.rejected_objects": 1,
            "published.by_kind.proxy_ip.created": 6,
            "published.by_tlp.amber+strict.expired": 1,
            "exceptions.refused_detections": 1,
            "marking": scenario.marking,
        }.items():
            assert _figure(page, name) == str(value), name
        header, footer = page.locator("#marking-header"), page.locator("#marking-footer")
        assert header.is_visible()
        assert footer.is_visible()
        assert scenario.marking in header.inner_text()
        assert scenario.marking in footer.inner_text()
        assert page.locator("#chart-activity svg").count() == 1
        assert page.locator("#chart-mix svg").count() == 1
        _screenshot(page, tmp_path / "report.png")

        # Printed, every page carries the marking at its top and bottom.
        printed = PdfReader(io.BytesIO(page.pdf(format="A4", print_background=True)))
        assert len(printed.pages) >= 2
        for number, sheet in enumerate(printed.pages, start=1):
            assert sheet.extract_text().count(scenario.marking) >= 4, f"printed page {number}"
        page.close()
        assert console.errors == []


class TestDashboardInBrowser:
    def test_sign_in_dashboard_downloads_and_sign_out(
        self, scenario: Scenario, live_server: str, chromium: Any, tmp_path: Path
    ) -> None:
        context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        refused = context.new_page()  # a partner's key is refused (403: not a page for the console check)
        refused.goto(f"{live_server}/ui/login")
        refused.fill("#key_id", scenario.keys["lab-a"].key_id)
        refused.fill("#secret", scenario.keys["lab-a"].secret)
        refused.click("#sign-in")
        assert "compliance and admin" in refused.locator("#login-error").inner_text()
        assert all(c["name"] != "ix_ui_key" for c in context.cookies())
        refused.close()

        page = context.new_page()
        console = Console(page)
        page.goto(f"{live_server}/ui/")
        assert page.url == f"{live_server}/ui/login"
        key = scenario.keys["compliance"]
        page.fill("#key_id", key.key_id)
        page.fill("#secret", key.secret)
        page.click("#sign-in")
        page.wait_for_url(f"{live_server}/ui/")
        assert key.secret not in page.url
        cookie = next(c for c in context.cookies() if c["name"] == "ix_ui_key")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/ui"

        assert page.locator("#who").inner_text() == "auditor"
        assert _figure(page, "published.totals.created") == str(scenario.totals["created"])
        assert _figure(page, "shared.objects_served") == "22"
        assert _figure(page, f"collection.{scenario.collection}.objects") == "11"
        assert _figure(page, f"collection.{scenario.inbox}.objects") == "3"
        assert _figure(page, f"shared.lab-a.{scenario.collection}.objects_served") == "16"
        assert scenario.marking in page.locator("#marking-header").inner_text()
        assert page.locator("#chart-activity svg").count() == 1
        assert page.locator("#chart-mix svg").count() == 1
        _screenshot(page, tmp_path / "dashboard.png")

        # The download buttons: each format comes back, marked, with the signed-in cookie.
        with page.expect_download() as pdf_download:
            page.click("#quick-pdf")
        pdf = PdfReader(pdf_download.value.path())
        assert all(scenario.marking in sheet.extract_text() for sheet in pdf.pages)
        with page.expect_download() as csv_download:
            page.click("#download-csv")
        assert f"report,meta,marking,,value,{scenario.marking}" in Path(csv_download.value.path()).read_text()
        with page.expect_download() as json_download:
            page.click("#quick-json")
        assert json.loads(Path(json_download.value.path()).read_text())["marking"] == scenario.marking
        page.click("#quick-html")
        assert _figure(page, "published.totals.created") == str(scenario.totals["created"])
        page.go_back()

        page.click("text=Sign out")
        page.wait_for_url(f"{live_server}/ui/login")
        assert all(c["name"] != "ix_ui_key" for c in context.cookies())
        page.goto(f"{live_server}/ui/")
        assert page.url == f"{live_server}/ui/login"
        context.close()
        assert console.errors == [], "\n".join(console.errors)


class TestApiDocsInBrowser:
    """`/docs` renders the API with every request answered by the server itself (issue 13 §3)."""

    @staticmethod
    def _operations(live_server: str) -> int:
        paths = httpx.get(f"{live_server}/openapi.json", timeout=10).json()["paths"]
        return sum(1 for methods in paths.values() for method in methods if method in HTTP_METHODS)

    @staticmethod
    def _loopback_only(context: Any, live_server: str) -> list[str]:
        """Route every request of ``context``: the server's own go through, any other is aborted and listed."""
        elsewhere: list[str] = []

        def route(request_route: Any) -> None:
            url = request_route.request.url
            if url.startswith((f"{live_server}/", "data:", "blob:")):
                request_route.continue_()
            else:
                elsewhere.append(url)
                request_route.abort()

        context.route("**/*", route)
        return elsewhere

    def test_swagger_ui_renders_every_operation_offline(self, live_server: str, chromium: Any, tmp_path: Path) -> None:
        operations = self._operations(live_server)
        assert operations >= 20
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        elsewhere = self._loopback_only(context, live_server)
        page = context.new_page()
        console = Console(page)
        page.goto(f"{live_server}/docs")
        page.locator(".opblock").first.wait_for(timeout=30_000)
        assert elsewhere == [], "requests that left the server"  # first: without its assets the page breaks
        assert page.locator(".opblock").count() == operations
        assert page.locator(".opblock-tag").count() >= 5
        assert "indicator-exchange" in page.locator(".info .title").inner_text()
        # The operations whose bodies are described by hand open with their schema resolved (the example is
        # built from it; a dangling $ref shows a resolver error), with parameters and responses.
        for path, field in (("/api/v1/detections", '"kind"'), ("/api/v1/match", '"timestamp"')):
            operation = page.locator(f'.opblock-post:has(.opblock-summary-path[data-path="{path}"])')
            operation.locator(".opblock-summary").click()
            operation.locator(".opblock-body .responses-wrapper").wait_for(timeout=10_000)
            example = operation.locator(".opblock-section-request-body .body-param__example")
            example.wait_for(timeout=10_000)
            assert field in example.inner_text(), path
        page.wait_for_timeout(500)  # Swagger UI resolves the opened operations' references asynchronously
        assert page.locator(".errors-wrapper").count() == 0, page.locator(".errors-wrapper").all_inner_texts()
        _screenshot(page, tmp_path / "docs.png")
        context.close()
        assert elsewhere == []
        assert console.errors == [], "\n".join(console.errors)
