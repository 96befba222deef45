"""TAXII 2.1 conformance of every endpoint: resources, media types, filters, paging, and bad input that gets
the right status, a TAXII error resource, and changes nothing stored."""

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from indicator_exchange.services import services_of
from indicator_exchange.store.models import ObjectVersion
from tests.fixtures.factories import TAXII_POST, Key, envelope, make_collection, make_indicator, make_key, objects_url

TAXII = "application/taxii+json;version=2.1"


def seeded(client: TestClient, session: Session, count: int = 5) -> tuple[uuid.UUID, Key]:
    collection = make_collection(session)
    key = make_key(session, "lab", read=[collection], write=[collection])
    session.commit()
    response = client.post(
        objects_url(collection), headers=key.post, json=envelope(*[make_indicator(i) for i in range(count)])
    )
    assert response.status_code == 202
    return collection, key


def stored(session: Session) -> int:
    """Rows stored, read in a transaction of its own (ended at once: SQLite writers must not wait on it)."""
    session.rollback()
    count = int(session.execute(select(func.count()).select_from(ObjectVersion)).scalar_one())
    session.rollback()
    return count


def assert_taxii_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == TAXII
    body = response.json()
    assert body["http_status"] == str(status)
    assert body["title"]


class TestResources:
    def test_discovery_lists_api_root_urls(self, client: TestClient, session: Session) -> None:
        _, key = seeded(client, session)
        body = client.get("/taxii2/", headers=key.basic).json()
        assert body["api_roots"] == ["http://testserver/api1/"]
        assert body["default"] == "http://testserver/api1/"

    def test_api_root_advertises_version_and_limit(self, client: TestClient, session: Session) -> None:
        _, key = seeded(client, session)
        body = client.get("/api1/", headers=key.basic).json()
        assert body["versions"] == [TAXII]
        assert body["max_content_length"] == services_of(client.app).settings.max_content_length

    def test_collection_resource_reflects_the_callers_access(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session)
        body = client.get(f"/api1/collections/{collection}/", headers=key.basic).json()
        assert body["id"] == str(collection)
        assert (body["can_read"], body["can_write"]) == (True, True)
        assert body["media_types"] == ["application/stix+json;version=2.1"]

    def test_status_lists_each_object(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session)
        bad = {"type": "indicator", "id": "indicator--not-a-uuid"}
        posted = client.post(objects_url(collection), headers=key.post, json=envelope(make_indicator(9), bad)).json()
        assert (
            posted["status"],
            posted["total_count"],
            posted["success_count"],
            posted["failure_count"],
            posted["pending_count"],
        ) == ("complete", 2, 1, 1, 0)
        status = client.get(f"/api1/status/{posted['id']}/", headers=key.basic).json()
        assert status["successes"][0]["id"] == make_indicator(9)["id"]
        assert "UUID" in status["failures"][0]["message"]

    def test_manifest_and_versions(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=1)
        later = make_indicator(0, modified="2026-03-01T00:00:00.000Z")
        client.post(objects_url(collection), headers=key.post, json=envelope(later))
        object_url = f"{objects_url(collection)}{later['id']}/"
        versions = client.get(f"{object_url}versions/", headers=key.basic).json()["versions"]
        assert versions == ["2026-02-24T12:00:00.000Z", "2026-03-01T00:00:00.000Z"]
        manifest = client.get(objects_url(collection).replace("objects", "manifest"), headers=key.basic).json()
        record = manifest["objects"][0]
        assert record["version"] == "2026-03-01T00:00:00.000Z"
        assert record["media_type"] == "application/stix+json;version=2.1"
        assert record["date_added"].endswith("Z")

    def test_delete_removes_the_object(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=2)
        target = f"{objects_url(collection)}{make_indicator(0)['id']}/"
        assert client.delete(target, headers=key.basic).status_code == 200
        assert_taxii_error(client.get(target, headers=key.basic), 404)
        assert stored(session) == 1


class TestMediaTypes:
    @pytest.mark.parametrize(
        "accept",
        [
            TAXII,
            "application/taxii+json",
            "*/*",
            "application/*",
            "text/html;q=0.5, application/taxii+json;version=2.1;q=0.9",
        ],
    )
    def test_accepted(self, client: TestClient, session: Session, accept: str) -> None:
        collection, key = seeded(client, session)
        response = client.get(objects_url(collection), headers={**key.basic, "Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"] == TAXII

    @pytest.mark.parametrize(
        "accept", ["application/json", "application/taxii+json;version=2.0", "text/html", "application/taxii+json;q=0"]
    )
    def test_refused_with_406(self, client: TestClient, session: Session, accept: str) -> None:
        collection, key = seeded(client, session)
        assert_taxii_error(client.get(objects_url(collection), headers={**key.basic, "Accept": accept}), 406)

    @pytest.mark.parametrize("content_type", [None, "application/json", "application/taxii+json;version=2.0"])
    def test_post_needs_the_taxii_content_type(
        self, client: TestClient, session: Session, content_type: str | None
    ) -> None:
        collection, key = seeded(client, session)
        headers = {**key.basic}
        if content_type:
            headers["Content-Type"] = content_type
        before = stored(session)
        response = client.post(objects_url(collection), headers=headers, content=b'{"objects": []}')
        assert_taxii_error(response, 415)
        assert stored(session) == before


class TestFilters:
    def test_paging_follows_next_without_loss(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=7)
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 3}
        for _ in range(5):  # 7 objects make 3 pages; a cursor that never advances fails, it does not hang
            response = client.get(objects_url(collection), headers=key.basic, params=params)
            body = response.json()
            seen += [o["id"] for o in body.get("objects", [])]
            assert "X-TAXII-Date-Added-First" in response.headers
            if not body["more"]:
                assert "next" not in body
                break
            params = {"limit": 3, "next": body["next"]}
        else:
            pytest.fail("paging with next did not end")
        assert sorted(seen) == sorted(make_indicator(i)["id"] for i in range(7))

    def test_a_page_lists_objects_in_date_added_order(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "reader-writer", read=[collection], write=[collection])
        session.commit()
        for start in range(0, 600, 150):  # four envelopes, so date_added follows envelope order
            objects = [make_indicator(i) for i in range(start, start + 150)]
            assert client.post(objects_url(collection), headers=key.post, json=envelope(*objects)).status_code == 202
        body = client.get(objects_url(collection), headers=key.basic, params={"limit": 500}).json()
        assert [o["id"] for o in body["objects"]] == [make_indicator(i)["id"] for i in range(500)]
        assert body["more"] is True

    def test_added_after_is_exclusive(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=3)
        first = client.get(objects_url(collection), headers=key.basic, params={"limit": 1})
        mark = first.headers["X-TAXII-Date-Added-Last"]
        rest = client.get(objects_url(collection), headers=key.basic, params={"added_after": mark}).json()
        ids = [o["id"] for o in rest["objects"]]
        assert first.json()["objects"][0]["id"] not in ids
        assert len(ids) == 2

    def test_multi_value_match_id_and_type(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=4)
        wanted = [make_indicator(1)["id"], make_indicator(3)["id"]]
        body = client.get(
            objects_url(collection),
            headers=key.basic,
            params={"match[id]": ",".join(wanted), "match[type]": "indicator,malware"},
        ).json()
        assert sorted(o["id"] for o in body["objects"]) == sorted(wanted)
        none = client.get(objects_url(collection), headers=key.basic, params={"match[type]": "malware"}).json()
        assert none == {"more": False}

    def test_match_version_first_last_all_and_timestamps(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=1)
        client.post(
            objects_url(collection),
            headers=key.post,
            json=envelope(
                make_indicator(0, modified="2026-03-01T00:00:00.000Z"),
                make_indicator(0, modified="2026-04-01T00:00:00.000Z"),
            ),
        )

        def versions(value: str) -> list[str]:
            body = client.get(objects_url(collection), headers=key.basic, params={"match[version]": value}).json()
            return sorted(o["modified"] for o in body.get("objects", []))

        assert versions("last") == ["2026-04-01T00:00:00.000Z"]
        assert versions("first") == ["2026-02-24T12:00:00.000Z"]
        assert len(versions("all")) == 3
        assert versions("first,last") == ["2026-02-24T12:00:00.000Z", "2026-04-01T00:00:00.000Z"]
        assert versions("2026-03-01T00:00:00.000Z") == ["2026-03-01T00:00:00.000Z"]

    def test_match_spec_version(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=2)
        assert (
            len(
                client.get(objects_url(collection), headers=key.basic, params={"match[spec_version]": "2.1"}).json()[
                    "objects"
                ]
            )
            == 2
        )
        assert client.get(objects_url(collection), headers=key.basic, params={"match[spec_version]": "2.0"}).json() == {
            "more": False
        }

    def test_alias_works_in_place_of_the_id(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session, alias="proxies")
        key = make_key(session, "lab", read=[collection], write=[collection])
        session.commit()
        assert (
            client.post(
                "/api1/collections/proxies/objects/", headers=key.post, json=envelope(make_indicator(1))
            ).status_code
            == 202
        )
        assert len(client.get("/api1/collections/proxies/objects/", headers=key.basic).json()["objects"]) == 1


class TestWrites:
    def test_reposting_an_identical_object_is_a_success(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=1)
        again = client.post(objects_url(collection), headers=key.post, json=envelope(make_indicator(0))).json()
        assert (again["success_count"], again["failure_count"]) == (1, 0)
        assert stored(session) == 1

    def test_same_version_different_content_is_a_failure(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session, count=1)
        changed = make_indicator(0, name="something else")
        result = client.post(objects_url(collection), headers=key.post, json=envelope(changed)).json()
        assert result["failure_count"] == 1
        assert stored(session) == 1

    @pytest.mark.parametrize(
        "broken",
        [
            {"id": "indicator--00000000-0000-4000-8000-000000000001", "spec_version": "2.1"},
            {"type": "indicator", "spec_version": "2.1"},
            {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000002"},
            {
                "type": "indicator",
                "id": "indicator--00000000-0000-4000-8000-000000000003",
                "spec_version": "2.1",
                "created": "2026-01-01T00:00:00Z",
            },
            {
                "type": "indicator",
                "id": "indicator--00000000-0000-4000-8000-000000000004",
                "spec_version": "2.1",
                "created": "2026-01-01T00:00:00Z",
                "modified": "yesterday",
            },
            {"type": "malware", "id": "indicator--00000000-0000-4000-8000-000000000005", "spec_version": "2.1"},
            "not an object",
        ],
    )
    def test_bad_objects_fail_alone(self, client: TestClient, session: Session, broken: Any) -> None:
        collection, key = seeded(client, session, count=1)
        result = client.post(objects_url(collection), headers=key.post, json=envelope(make_indicator(5), broken)).json()  # type: ignore[arg-type]
        assert (result["success_count"], result["failure_count"]) == (1, 1)
        assert stored(session) == 2


class TestBadInput:
    @pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b'{"objects": {}}', b"{}", b"\xff\xfe"])
    def test_malformed_envelopes_are_400_and_store_nothing(
        self, client: TestClient, session: Session, body: bytes
    ) -> None:
        collection, key = seeded(client, session)
        before = stored(session)
        assert_taxii_error(client.post(objects_url(collection), headers=key.post, content=body), 400)
        assert stored(session) == before

    @pytest.mark.parametrize(
        "params",
        [
            {"next": "garbage"},
            {"next": "aXgxOmFiYw"},
            {"added_after": "yesterday"},
            {"added_after": "2026-13-45T00:00:00Z"},
            {"match[version]": "newest"},
            {"limit": "0"},
            {"limit": "-1"},
            {"limit": "abc"},
            {"match[type]": ""},
        ],
    )
    def test_malformed_query_parameters_are_400(
        self, client: TestClient, session: Session, params: dict[str, str]
    ) -> None:
        collection, key = seeded(client, session)
        assert_taxii_error(client.get(objects_url(collection), headers=key.basic, params=params), 400)

    def test_a_body_over_the_limit_is_413(self, client: TestClient, session: Session) -> None:
        collection, key = seeded(client, session)
        services_of(client.app).settings.max_content_length = 2048
        before = stored(session)
        big = envelope(*[make_indicator(i) for i in range(100, 130)])
        assert_taxii_error(client.post(objects_url(collection), headers=key.post, json=big), 413)

        def chunks() -> Any:
            yield b'{"objects": ['
            for _ in range(50):
                yield b'{"type": "indicator"},' * 10
            yield b"{}]}"

        response = client.post(objects_url(collection), headers=key.post, content=chunks())
        assert_taxii_error(response, 413)
        assert stored(session) == before

    @pytest.mark.parametrize(
        "path",
        [
            "/nowhere/",
            "/api1/collections/{unknown}/",
            "/api1/collections/{c}/objects/indicator--00000000-0000-4000-8000-00000000dead/",
            "/api1/status/{unknown}/",
            "/api1/status/not-a-uuid/",
        ],
    )
    def test_unknown_resources_are_404(self, client: TestClient, session: Session, path: str) -> None:
        collection, key = seeded(client, session)
        url = path.format(unknown=uuid.uuid4(), c=collection)
        assert_taxii_error(client.get(url, headers=key.basic), 404)

    @pytest.mark.parametrize("authorization", [None, "Basic bm9wZTpub3Bl", "Bearer nope.nope", "Digest x"])
    def test_no_or_bad_credentials_are_401(
        self, client: TestClient, session: Session, authorization: str | None
    ) -> None:
        collection, _ = seeded(client, session)
        headers = {"Accept": TAXII} if authorization is None else {"Accept": TAXII, "Authorization": authorization}
        response = client.get(objects_url(collection), headers=headers)
        assert_taxii_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Basic")

    def test_no_grant_is_404_and_reading_is_not_writing(self, client: TestClient, session: Session) -> None:
        collection, _ = seeded(client, session)
        other = make_collection(session, title="other")
        reader = make_key(session, "reader", read=[collection, other])
        session.commit()
        assert_taxii_error(
            client.post(objects_url(collection), headers=reader.post, json=envelope(make_indicator(99))), 403
        )
        stranger = make_key(session, "stranger", read=[other])
        session.commit()
        assert_taxii_error(client.get(objects_url(collection), headers=stranger.basic), 404)
        assert TAXII_POST["Content-Type"] == TAXII
