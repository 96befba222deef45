"""`/docs` references only the server's own URLs, and every asset they name is served.

The rendering itself (operations on screen, no request leaving loopback) is checked in Chromium by
tests/reports/test_browser.py; these run without a browser or a database (no lifespan).
"""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indicator_exchange.api_docs import STATIC_URL
from indicator_exchange.app import create_app
from tests.conftest import make_settings

PAGES = ["/docs"]
# Every URL the page can make the browser fetch: attributes and Swagger UI's `url:`.
_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']*)["']|\burl:\s*["']([^"']*)["']""")
# The assets and the smallest size a real copy has (a truncated or placeholder file fails).
ASSETS = {
    "swagger-ui-bundle.js": ("javascript", 500_000),
    "swagger-ui.css": ("text/css", 50_000),
    "favicon.png": ("image/png", 1_000),
}


@pytest.fixture
def docs_client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(make_settings(f"sqlite:///{tmp_path / 'unused.db'}")))


def _json_refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _json_refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _json_refs(value)]
    return []


def _references(html: str) -> list[str]:
    return [src or url for src, url in _REFERENCES.findall(html)]


class TestLocalReferences:
    @pytest.mark.parametrize("page", PAGES)
    def test_every_reference_is_local(self, docs_client: TestClient, page: str) -> None:
        response = docs_client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        references = _references(response.text)
        assert "/openapi.json" in references
        assert any(r.startswith(STATIC_URL + "/") and r.endswith(".js") for r in references), references
        for reference in references:
            assert reference.startswith("/"), reference
            assert not reference.startswith("//"), reference
        # Nothing absolute anywhere in the page (a CDN URL, Google Fonts, a validator).
        assert "://" not in response.text

    def test_swagger_ui_sends_nothing_to_its_public_validator(self, docs_client: TestClient) -> None:
        assert '"validatorUrl": null' in docs_client.get("/docs").text

    @pytest.mark.parametrize("page", PAGES)
    def test_every_referenced_asset_is_served(self, docs_client: TestClient, page: str) -> None:
        for reference in _references(docs_client.get(page).text):
            response = docs_client.get(reference)
            assert response.status_code == 200, reference
            if reference.startswith(STATIC_URL):
                media_type, smallest = ASSETS[reference.rsplit("/", 1)[1]]
                assert media_type in response.headers["content-type"], reference
                assert len(response.content) >= smallest, reference

    def test_behind_a_root_path_references_carry_it(self, tmp_path: Path) -> None:
        app = create_app(make_settings(f"sqlite:///{tmp_path / 'unused.db'}"))
        with_root = TestClient(app, root_path="/exchange")
        for page in PAGES:
            for reference in _references(with_root.get(page).text):
                assert reference.startswith("/exchange/"), (page, reference)

    def test_a_missing_asset_is_a_plain_404(self, docs_client: TestClient) -> None:
        response = docs_client.get(f"{STATIC_URL}/no-such-file.js")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/json")

    def test_documentation_routes_stay_out_of_the_schema(self, docs_client: TestClient) -> None:
        paths = docs_client.get("/openapi.json").json()["paths"]
        assert not [p for p in paths if p in PAGES or p.startswith("/static")]


class TestOpenApiDocument:
    def test_every_ref_resolves(self, docs_client: TestClient) -> None:
        """A dangling `$ref` (a body read raw, described by hand) leaves ReDoc showing nothing at all."""
        document = docs_client.get("/openapi.json").json()
        refs = set(_json_refs(document))
        assert "#/components/schemas/Detection" in refs
        assert "#/components/schemas/TrafficEvent" in refs
        for ref in refs:
            assert ref.startswith("#/"), ref
            node = document
            for part in ref[2:].split("/"):
                assert part in node, ref
                node = node[part]

    def test_request_schemas_describe_the_bodies(self, docs_client: TestClient) -> None:
        schemas = docs_client.get("/openapi.json").json()["components"]["schemas"]
        assert schemas["Detection"]["discriminator"]["propertyName"] == "kind"
        assert {"ProxyIpDetection", "PromptSignatureDetection", "AccountPatternDetection"} <= set(schemas)
        assert "source_ip" in schemas["TrafficEvent"]["properties"]
