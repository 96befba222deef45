"""Issue 14 §5/§8: what PostgreSQL cannot store, or pydantic would silently coerce, is a 400 at the edge.

Each case here was a 500 (NUL in a parameter, an int past 2**31-1) or a lax coercion (``is_active: 0``,
``until=0.5``); on both backends, every answer is the API's own error body.
"""

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.fixtures.factories import Key, make_collection, make_key
from tests.ingest.test_api import detection, push

API = "/api/v1/admin"
NUL = "a\x00b"


@pytest.fixture
def ops(session: Session) -> Key:
    key = make_key(session, "ops", kind="admin", clearance="red")
    session.commit()
    return key


def assert_refused(response: Any, *, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error", "detail"}


class TestNulInAdminParameters:
    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/collections", {"api_root": NUL}),
            ("/keys", {"principal": NUL}),
            ("/grants", {"principal": NUL}),
            ("/audit", {"principal": NUL}),
            ("/audit/deliveries", {"object_id": NUL, "principal": "ops"}),
            ("/audit/deliveries", {"object_id": "indicator--x", "principal": NUL}),
        ],
    )
    def test_query(self, client: TestClient, ops: Key, path: str, params: dict[str, str]) -> None:
        assert_refused(client.get(f"{API}{path}", params=params, headers=ops.basic))

    def test_principal_name_in_path(self, client: TestClient, ops: Key) -> None:
        assert_refused(client.get(f"{API}/principals/a%00b", headers=ops.basic))
        assert_refused(client.patch(f"{API}/principals/a%00b", json={"clearance": "red"}, headers=ops.basic))
        assert_refused(client.delete(f"{API}/grants/a%00b/{uuid.uuid4()}", headers=ops.basic))

    def test_key_id_in_path(self, client: TestClient, ops: Key) -> None:
        assert_refused(client.post(f"{API}/keys/a%00b/revoke", headers=ops.basic))

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/api-roots", {"name": "root", "title": NUL}),
            ("/principals", {"name": NUL}),
            ("/principals", {"name": "p", "organisation": NUL}),
            ("/keys", {"principal": NUL}),
        ],
    )
    def test_body(self, client: TestClient, ops: Key, path: str, body: dict[str, object]) -> None:
        assert_refused(client.post(f"{API}{path}", json=body, headers=ops.basic))


class TestBoundedIntegers:
    @pytest.mark.parametrize("field", ["requests_per_minute", "objects_per_day"])
    @pytest.mark.parametrize("value", [2**31, 2**63, -1])
    def test_limits_out_of_range(self, client: TestClient, ops: Key, field: str, value: int) -> None:
        assert_refused(client.post(f"{API}/principals", json={"name": "p", field: value}, headers=ops.basic))
        assert_refused(client.patch(f"{API}/principals/ops", json={field: value}, headers=ops.basic))

    def test_largest_limit_is_stored(self, client: TestClient, ops: Key) -> None:
        response = client.patch(f"{API}/principals/ops", json={"objects_per_day": 2**31 - 1}, headers=ops.basic)
        assert response.status_code == 200, response.text
        assert response.json()["objects_per_day"] == 2**31 - 1

    @pytest.mark.parametrize("before", [str(2**63), "0", "-1", "9" * 5000])
    def test_audit_before_out_of_range(self, client: TestClient, ops: Key, before: str) -> None:
        assert_refused(client.get(f"{API}/audit", params={"before": before}, headers=ops.basic))

    @pytest.mark.parametrize("hours", [1e300, -1, 24 * 366 * 10 + 1])
    def test_rotation_grace_bounded(self, client: TestClient, ops: Key, hours: float) -> None:
        assert_refused(client.post(f"{API}/keys/{ops.key_id}/rotate", json={"grace_hours": hours}, headers=ops.basic))


class TestNoLaxCoercion:
    @pytest.mark.parametrize(
        "body",
        [
            {"is_active": 0},
            {"is_active": "false"},
            {"objects_per_day": False},
            {"requests_per_minute": "10"},
            {"requests_per_minute": 10.0},
        ],
    )
    def test_principal_update(self, client: TestClient, ops: Key, body: dict[str, object]) -> None:
        assert_refused(client.patch(f"{API}/principals/ops", json=body, headers=ops.basic))
        assert client.get(f"{API}/principals/ops", headers=ops.basic).json()["is_active"] is True

    def test_grant_flags(self, client: TestClient, session: Session, ops: Key) -> None:
        collection = make_collection(session)
        session.commit()
        body = {"principal": "ops", "collection_id": str(collection), "read": 1}
        assert_refused(client.put(f"{API}/grants", json=body, headers=ops.basic))

    @pytest.mark.parametrize(
        "value",
        ["0.5", "0", "1700000000", "2026-01-01T00:00:00", "2026-01-01", "\uff12\uff10\uff12\uff16-01-01T00:00:00Z"],
    )
    def test_audit_times_are_rfc3339(self, client: TestClient, ops: Key, value: str) -> None:
        for name in ("since", "until"):
            assert_refused(client.get(f"{API}/audit", params={name: value}, headers=ops.basic))

    @pytest.mark.parametrize("value", ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789+02:00"])
    def test_audit_accepts_rfc3339(self, client: TestClient, ops: Key, value: str) -> None:
        assert client.get(f"{API}/audit", params={"until": value}, headers=ops.basic).status_code == 200

    @pytest.mark.parametrize("value", [1_800_000_000, "2030-01-01T00:00:00", True])
    def test_key_expiry_is_rfc3339(self, client: TestClient, ops: Key, value: object) -> None:
        assert_refused(client.post(f"{API}/keys", json={"principal": "ops", "expires_at": value}, headers=ops.basic))


class TestDetectionLines:
    """One bad line is that line's rejection; the rest of the batch is stored."""

    def _setup(self, session: Session) -> Key:
        collection = make_collection(session)
        key = make_key(session, "det", kind="detector", clearance="red", read=[collection], write=[collection])
        session.commit()
        return key

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("detector", NUL),
            ("description", NUL),
            ("confidence", "60"),
            ("confidence", True),
            ("accounts_linked", 2**31),
            ("requests", 2**63),
        ],
    )
    def test_bad_field_rejects_only_its_line(
        self, client: TestClient, session: Session, field: str, value: object
    ) -> None:
        key = self._setup(session)
        good = detection(value="46.91.113.9")
        bad = detection(value="46.91.113.10", **{field: value})
        response = push(client, key, [good, bad, detection(value="46.91.113.11")])
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["outcome"] for r in results] == ["created", "rejected", "created"]
        assert results[1]["error"]["field"].endswith(field)

    def test_nul_detector_in_ndjson(self, client: TestClient, session: Session) -> None:
        key = self._setup(session)
        lines = [detection(value="46.91.113.20"), detection(value="46.91.113.21", detector=NUL)]
        response = push(client, key, "\n".join(json.dumps(line) for line in lines), ndjson=True)
        assert response.status_code == 200, response.text
        assert [r["outcome"] for r in response.json()["results"]] == ["created", "rejected"]


class TestNulInOtherQueries:
    @pytest.mark.parametrize(
        ("method", "path", "params"),
        [
            ("POST", "/api/v1/detections", {"collection": NUL}),
            ("POST", "/api/v1/match", {"collection": NUL}),
            ("GET", "/api/v1/export", {"collection": NUL}),
            ("GET", "/api/v1/export", {"collection": "c", "type": NUL}),
            ("GET", "/api/v1/export", {"collection": "c", "since": NUL}),
            ("GET", "/api/v1/reports/sharing", {"from": NUL, "to": "2026-01-02"}),
            ("GET", "/api/v1/reports/sharing", {"from": "2026-01-01", "to": "2026-01-02", "partner": NUL}),
        ],
    )
    def test_refused(self, client: TestClient, ops: Key, method: str, path: str, params: dict[str, str]) -> None:
        response = client.request(method, path, params=params, headers={**ops.basic, "Accept": "*/*"}, json=[])
        assert_refused(response)


class TestNulInDashboardQueries:
    """The dashboard's downloads take the same parameters as the API's: NUL is refused before anything runs."""

    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/ui/export", {"collection": NUL}),
            ("/ui/export", {"collection": "c", "since": NUL}),
            ("/ui/reports/sharing", {"from": NUL, "to": "2026-01-02"}),
            ("/ui/reports/sharing", {"from": "2026-01-01", "to": "2026-01-02", "partner": NUL}),
        ],
    )
    def test_refused(self, client: TestClient, path: str, params: dict[str, str]) -> None:
        assert_refused(client.get(path, params=params, follow_redirects=False))
