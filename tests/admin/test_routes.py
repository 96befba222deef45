"""The admin HTTP API: admin principals only, plain JSON errors, OpenAPI-documented, same effects as the CLI."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.services import services_of
from tests.fixtures.clock import FakeClock
from tests.fixtures.factories import Key, make_collection, make_key

API = "/api/v1/admin"


@pytest.fixture
def ops(session: Session) -> Key:
    key = make_key(session, "ops", kind="admin", clearance="red")
    session.commit()
    return key


def _key(body: dict[str, object], principal: str) -> Key:
    return Key(principal, str(body["key_id"]), str(body["secret"]))


class TestAccess:
    def test_no_key_is_401_json(self, client: TestClient, ops: Key) -> None:
        response = client.get(f"{API}/principals")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"
        assert set(response.json()) == {"error", "detail"}

    @pytest.mark.parametrize("kind", ["partner", "detector", "compliance"])
    def test_other_kinds_are_403(self, client: TestClient, session: Session, ops: Key, kind: str) -> None:
        key = make_key(session, f"p-{kind}", kind=kind, clearance="red")
        session.commit()
        response = client.get(f"{API}/principals", headers=key.basic)
        assert response.status_code == 403
        assert response.json() == {"error": "Not permitted", "detail": "this needs a principal of kind admin"}

    def test_validation_errors_are_400_json(self, client: TestClient, ops: Key) -> None:
        response = client.post(f"{API}/principals", headers=ops.basic, json={"name": "x", "clearance": "purple"})
        assert response.status_code == 400
        assert set(response.json()) == {"error", "detail"}


class TestResources:
    def test_api_roots_and_collections(self, client: TestClient, ops: Key) -> None:
        root = {"name": "feeds", "title": "F"}
        assert client.post(f"{API}/api-roots", headers=ops.basic, json=root).status_code == 201
        assert client.post(f"{API}/api-roots", headers=ops.basic, json=root).status_code == 409
        body = {"api_root": "feeds", "title": "C", "default_tlp": "green", "alias": "c"}
        created = client.post(f"{API}/collections", headers=ops.basic, json=body)
        assert created.status_code == 201
        assert created.json()["default_tlp"] == "green"
        listed = client.get(f"{API}/collections", params={"api_root": "feeds"}, headers=ops.basic).json()
        assert [c["id"] for c in listed] == [created.json()["id"]]
        assert [r["name"] for r in client.get(f"{API}/api-roots", headers=ops.basic).json()] == ["feeds"]

    def test_collection_validation_policy(self, client: TestClient, ops: Key) -> None:
        client.post(f"{API}/api-roots", headers=ops.basic, json={"name": "feeds", "title": "F"})
        body = {"api_root": "feeds", "title": "C", "alias": "c"}
        created = client.post(f"{API}/collections", headers=ops.basic, json=body).json()
        assert created["validation"] == "strict"
        verbatim = client.post(
            f"{API}/collections", headers=ops.basic, json={**body, "alias": "v", "validation": "basic"}
        ).json()
        assert verbatim["validation"] == "basic"
        changed = client.patch(f"{API}/collections/c", headers=ops.basic, json={"validation": "basic"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["validation"] == "basic"
        listed = client.get(f"{API}/collections", headers=ops.basic).json()
        assert {c["alias"]: c["validation"] for c in listed} == {"c": "basic", "v": "basic"}
        assert (
            client.patch(
                f"{API}/collections/{verbatim['id']}", headers=ops.basic, json={"validation": "strict"}
            ).json()["validation"]
            == "strict"
        )
        assert client.patch(f"{API}/collections/c", headers=ops.basic, json={"validation": "lax"}).status_code == 400
        assert client.patch(f"{API}/collections/nothing", headers=ops.basic, json={}).status_code == 404
        # NUL-free and bounded like every name: a NUL reached PostgreSQL and was a 500.
        for bad in ("%00", "c%00", "x" * 129):
            refused = client.patch(f"{API}/collections/{bad}", headers=ops.basic, json={"validation": "basic"})
            assert refused.status_code == 400, (bad, refused.text)

    def test_principal_lifecycle(self, client: TestClient, ops: Key) -> None:
        body = {
            "name": "lab-b",
            "kind": "partner",
            "organisation": "Lab B",
            "clearance": "green",
            "requests_per_minute": 10,
        }
        created = client.post(f"{API}/principals", headers=ops.basic, json=body)
        assert created.status_code == 201
        assert created.json()["identity_ref"].startswith("identity--")
        assert client.post(f"{API}/principals", headers=ops.basic, json=body).status_code == 409
        changed = client.patch(
            f"{API}/principals/lab-b",
            headers=ops.basic,
            json={"clearance": "amber+strict", "requests_per_minute": None},
        )
        assert changed.status_code == 200
        assert (changed.json()["clearance"], changed.json()["requests_per_minute"]) == ("amber+strict", None)
        untouched = client.patch(f"{API}/principals/lab-b", headers=ops.basic, json={"organisation": "B"}).json()
        assert untouched["clearance"] == "amber+strict"
        assert client.get(f"{API}/principals/lab-b", headers=ops.basic).json()["organisation"] == "B"
        assert client.get(f"{API}/principals/nobody", headers=ops.basic).status_code == 404

    def test_deactivating_a_principal_refuses_its_keys(self, client: TestClient, session: Session, ops: Key) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        assert client.get("/api1/collections/", headers=key.basic).status_code == 200
        client.patch(f"{API}/principals/lab-a", headers=ops.basic, json={"is_active": False})
        assert client.get("/api1/collections/", headers=key.basic).status_code == 401

    def test_grants_take_effect_on_taxii(self, client: TestClient, session: Session, ops: Key) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a")
        session.commit()
        url = f"/api1/collections/{collection}/objects/"
        assert client.get(url, headers=key.basic).status_code == 404  # no grant: not disclosed
        grant = {"principal": "lab-a", "collection_id": str(collection), "read": True}
        assert client.put(f"{API}/grants", headers=ops.basic, json=grant).json()["read"] is True
        assert client.get(url, headers=key.basic).status_code == 200
        listed = client.get(f"{API}/grants", params={"principal": "lab-a"}, headers=ops.basic).json()
        assert listed == [{"principal": "lab-a", "collection_id": str(collection), "read": True, "write": False}]
        assert client.delete(f"{API}/grants/lab-a/{collection}", headers=ops.basic).status_code == 200
        assert client.get(url, headers=key.basic).status_code == 404
        assert client.delete(f"{API}/grants/lab-a/{collection}", headers=ops.basic).status_code == 404


class TestKeys:
    def test_create_shows_the_secret_once_and_list_never(self, client: TestClient, session: Session, ops: Key) -> None:
        collection = make_collection(session)
        make_key(session, "lab-a", read=[collection])
        session.commit()
        created = client.post(f"{API}/keys", headers=ops.basic, json={"principal": "lab-a"})
        assert created.status_code == 201
        key = _key(created.json(), "lab-a")
        assert created.json()["bearer"] == f"{key.key_id}.{key.secret}"
        assert client.get("/api1/collections/", headers=key.bearer).status_code == 200
        listed = client.get(f"{API}/keys", params={"principal": "lab-a"}, headers=ops.basic)
        assert key.key_id in listed.text
        assert key.secret not in listed.text
        assert all(
            set(k) == {"key_id", "principal", "created_at", "expires_at", "revoked_at", "last_used_at"}
            for k in listed.json()
        )

    def test_a_key_cannot_be_born_expired(self, client: TestClient, session: Session, ops: Key) -> None:
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        response = client.post(f"{API}/keys", headers=ops.basic, json={"principal": "ops", "expires_at": past})
        assert response.status_code == 400

    def test_revoke(self, client: TestClient, session: Session, ops: Key) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection])
        session.commit()
        revoked = client.post(f"{API}/keys/{key.key_id}/revoke", headers=ops.basic)
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert client.get("/api1/collections/", headers=key.basic).status_code == 401
        assert client.post(f"{API}/keys/ixk_0000000000000000/revoke", headers=ops.basic).status_code == 404

    def test_rotate_with_a_grace_period(self, client: TestClient, session: Session, ops: Key) -> None:
        collection = make_collection(session)
        old = make_key(session, "lab-a", read=[collection])
        session.commit()
        rotated = client.post(f"{API}/keys/{old.key_id}/rotate", headers=ops.basic, json={"grace_hours": 1})
        assert rotated.status_code == 201
        new = _key(rotated.json(), "lab-a")
        assert rotated.json()["replaces"]["key_id"] == old.key_id
        assert "secret" not in rotated.json()["replaces"]
        clock = FakeClock()
        services_of(client.app).clock = clock
        assert client.get("/api1/collections/", headers=old.basic).status_code == 200
        clock.advance(3601)
        assert client.get("/api1/collections/", headers=old.basic).status_code == 401
        assert client.get("/api1/collections/", headers=new.basic).status_code == 200


class TestAudit:
    def test_pages_newest_first_with_filters(self, client: TestClient, session: Session, ops: Key) -> None:
        collection = make_collection(session)
        a = make_key(session, "lab-a", read=[collection])
        session.commit()
        for _ in range(3):
            client.get("/api1/collections/", headers=a.basic)
        first = client.get(f"{API}/audit", params={"principal": "lab-a", "limit": 2}, headers=ops.basic).json()
        assert len(first["events"]) == 2
        assert first["events"][0]["id"] > first["events"][1]["id"]
        rest = client.get(
            f"{API}/audit", params={"principal": "lab-a", "limit": 2, "before": first["next_before"]}, headers=ops.basic
        ).json()
        assert len(rest["events"]) == 1
        assert rest["next_before"] is None
        assert {e["principal_name"] for e in first["events"] + rest["events"]} == {"lab-a"}
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert client.get(f"{API}/audit", params={"since": future}, headers=ops.basic).json()["events"] == []
        naive = datetime.now().replace(microsecond=0).isoformat()
        # RFC 3339 needs an offset: a naive time is ambiguous, and refused (tests/api/test_strict_input.py)
        assert client.get(f"{API}/audit", params={"until": naive}, headers=ops.basic).status_code == 400

    def test_deliveries(self, client: TestClient, session: Session, ops: Key) -> None:
        collection = make_collection(session)
        reader = make_key(session, "lab-a", read=[collection])
        session.commit()
        obj = {"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}", "value": "46.133.2.1"}
        client.post(f"/api1/collections/{collection}/objects/", headers=ops.post, json={"objects": [obj]})
        client.get(f"/api1/collections/{collection}/objects/", headers=reader.basic)
        found = client.get(
            f"{API}/audit/deliveries", params={"object_id": obj["id"], "principal": "lab-a"}, headers=ops.basic
        )
        assert found.status_code == 200
        assert [(d["kind"], d["key_id"]) for d in found.json()] == [("objects", reader.key_id)]


class TestOpenApi:
    def test_the_admin_api_is_documented_with_its_models(self, client: TestClient) -> None:
        schema = client.get("/openapi.json").json()
        paths = {p for p in schema["paths"] if p.startswith(API)}
        assert paths == {
            f"{API}/api-roots",
            f"{API}/collections",
            f"{API}/collections/{{collection}}",
            f"{API}/principals",
            f"{API}/principals/{{name}}",
            f"{API}/keys",
            f"{API}/keys/{{key_id}}/revoke",
            f"{API}/keys/{{key_id}}/rotate",
            f"{API}/grants",
            f"{API}/grants/{{principal}}/{{collection_id}}",
            f"{API}/audit",
            f"{API}/audit/deliveries",
        }
        components = schema["components"]["schemas"]
        assert "secret" in components["KeyCreated"]["properties"]
        assert "secret" not in components["KeyRead"]["properties"]
        assert schema["paths"][f"{API}/principals"]["get"]["responses"]["403"]["content"]["application/json"]
