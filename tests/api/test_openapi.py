"""Issue 14 §8: the OpenAPI document tells the truth — statuses, media types, bodies — and 405s name every method.

Checked against the document itself (every reference resolves, no FastAPI 422 that never happens) and against
real answers (a TAXII body validates against the schema documented for it).
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from sqlalchemy.orm import Session

from indicator_exchange.taxii.media import TAXII_MEDIA_TYPE
from tests.fixtures.factories import make_collection, make_indicator, make_key, objects_url

TAXII_PATHS = ("/taxii2/", "/{api_root}/")
STANDARD = {"400", "401", "429", "503"}


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": document["components"]})


def response_schema(document: dict[str, Any], path: str, method: str, status: str, media_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path][method]["responses"][status]["content"][media_type]["schema"]
    return schema


class TestDocument:
    def test_every_reference_resolves(self, document: dict[str, Any]) -> None:
        names = set(document["components"]["schemas"])
        missing = {r for r in refs(document) if r.removeprefix("#/components/schemas/") not in names}
        assert not missing, missing

    def test_no_validation_422_the_server_never_sends(self, document: dict[str, Any]) -> None:
        assert [(p, m) for p, m, op in operations(document) if "422" in op["responses"]] == []
        assert "HTTPValidationError" not in document["components"]["schemas"]

    def test_authenticated_routes_document_refusals(self, document: dict[str, Any]) -> None:
        for path, method, op in operations(document):
            if op.get("security"):
                assert set(op["responses"]) >= STANDARD, (method, path, sorted(op["responses"]))

    def test_taxii_routes_answer_the_taxii_media_type(self, document: dict[str, Any]) -> None:
        taxii = [(p, m, op) for p, m, op in operations(document) if p.startswith(TAXII_PATHS)]
        assert len(taxii) == 11
        for path, method, op in taxii:
            assert "406" in op["responses"], (method, path)
            for status, answer in op["responses"].items():
                assert list(answer.get("content", {TAXII_MEDIA_TYPE: {}})) == [TAXII_MEDIA_TYPE], (method, path, status)

    def test_taxii_write_documents_its_refusals(self, document: dict[str, Any]) -> None:
        post = document["paths"]["/{api_root}/collections/{collection_id}/objects/"]["post"]
        assert {"202", "403", "404", "413", "415"} <= set(post["responses"])
        assert list(post["requestBody"]["content"]) == [TAXII_MEDIA_TYPE]

    @pytest.mark.parametrize(
        ("path", "media_types"),
        [
            ("/api/v1/export", {"application/stix+json;version=2.1", "application/x-ndjson", "text/csv"}),
            ("/api/v1/reports/sharing", {"application/json", "text/csv", "text/html", "application/pdf"}),
        ],
    )
    def test_downloads_document_their_formats(self, document: dict[str, Any], path: str, media_types: set[str]) -> None:
        assert set(document["paths"][path]["get"]["responses"]["200"]["content"]) == media_types

    @pytest.mark.parametrize("path", ["/api/v1/detections", "/api/v1/match"])
    def test_ingest_and_match_document_bodies_and_refusals(self, document: dict[str, Any], path: str) -> None:
        post = document["paths"][path]["post"]
        assert {"200", "403", "413", "415"} <= set(post["responses"])
        assert "$ref" in post["responses"]["200"]["content"]["application/json"]["schema"]
        assert {"application/json", "application/x-ndjson"} == set(post["requestBody"]["content"])

    def test_limits_are_in_the_schema(self, document: dict[str, Any]) -> None:
        update = document["components"]["schemas"]["PrincipalUpdate"]["properties"]
        assert {"maximum": 2**31 - 1, "minimum": 0, "type": "integer"} in update["objects_per_day"]["anyOf"]
        name = next(p for p in document["paths"]["/api/v1/admin/principals/{name}"]["get"]["parameters"])
        assert name["schema"]["pattern"] == "^[^\\x00]*$"


class TestAnswersMatchTheDocument:
    def test_taxii_bodies(self, client: TestClient, session: Session, document: dict[str, Any]) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection], write=[collection])
        session.commit()
        url = objects_url(collection)
        posted = client.post(url, headers=key.post, json={"objects": [make_indicator(1), {"type": "x"}]})
        base = "/{api_root}/collections/{collection_id}"
        answers = [
            (posted, f"{base}/objects/", "post", "202"),
            (client.get("/taxii2/", headers=key.basic), "/taxii2/", "get", "200"),
            (client.get("/api1/", headers=key.basic), "/{api_root}/", "get", "200"),
            (client.get("/api1/collections/", headers=key.basic), "/{api_root}/collections/", "get", "200"),
            (client.get(f"/api1/collections/{collection}/", headers=key.basic), f"{base}/", "get", "200"),
            (client.get(url, headers=key.basic, params={"limit": 1}), f"{base}/objects/", "get", "200"),
            (client.get(url.replace("objects", "manifest"), headers=key.basic), f"{base}/manifest/", "get", "200"),
            (
                client.get(f"/api1/status/{posted.json()['id']}/", headers=key.basic),
                "/{api_root}/status/{status_id}/",
                "get",
                "200",
            ),
            (
                client.get("/api1/collections/", headers={"Accept": TAXII_MEDIA_TYPE}),
                "/{api_root}/collections/",
                "get",
                "401",
            ),
            (client.get(url, headers=key.basic, params={"limit": "x"}), f"{base}/objects/", "get", "400"),
            (client.get(url, headers={**key.basic, "Accept": "text/html"}), f"{base}/objects/", "get", "406"),
            (client.post(url, headers=key.basic, content=b"{}"), f"{base}/objects/", "post", "415"),
        ]
        for response, path, method, status in answers:
            assert str(response.status_code) == status, (path, response.text)
            assert response.headers["content-type"] == TAXII_MEDIA_TYPE
            schema = response_schema(document, path, method, status, TAXII_MEDIA_TYPE)
            validator(document, schema).validate(response.json())

    def test_json_error_body(self, client: TestClient, document: dict[str, Any]) -> None:
        response = client.get("/api/v1/admin/principals")
        assert response.status_code == 401
        schema = response_schema(document, "/api/v1/admin/principals", "get", "401", "application/json")
        validator(document, schema).validate(response.json())


class TestMethodNotAllowed:
    """Starlette named only the first route whose path matched: GET and POST on one path gave ``Allow: GET``."""

    @pytest.mark.parametrize(
        ("path", "allowed"),
        [
            ("/api/v1/admin/principals", {"GET", "POST"}),
            ("/api/v1/admin/principals/ops", {"GET", "PATCH"}),
            ("/api/v1/admin/grants", {"GET", "PUT"}),
            ("/api1/collections/5a1d3c2e-0000-4000-8000-000000000001/objects/", {"GET", "POST"}),
            ("/api1/collections/5a1d3c2e-0000-4000-8000-000000000001/objects/indicator--x/", {"GET", "DELETE"}),
        ],
    )
    def test_allow_names_every_method(self, client: TestClient, path: str, allowed: set[str]) -> None:
        response = client.request("OPTIONS", path)
        assert response.status_code == 405
        assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
        assert set(response.json()) in ({"error", "detail"}, {"title", "description", "http_status"})

    def test_taxii_405_is_a_taxii_error(self, client: TestClient) -> None:
        response = client.put("/taxii2/")
        assert response.status_code == 405
        assert response.headers["content-type"] == TAXII_MEDIA_TYPE
        assert response.headers["allow"] == "GET"
