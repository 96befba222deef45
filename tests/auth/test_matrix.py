"""The authorisation matrix: every TAXII endpoint x every kind of credential x every TLP level.

One world per backend (seeded once per module): a collection C (default TLP amber) holding objects at every
TLP 2.0 level, TLP 1.0 markings, a granular marking, an unmarked object, a two-version object and one whose
marking was raised in its second version; a collection D in the same API root that only ``no_grant`` and the
admin can see. Each test asserts the status codes and exactly which object ids (and versions) are served.
"""

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from indicator_exchange.admin import service as admin
from indicator_exchange.app import create_app
from indicator_exchange.stix.markings import TLP1_MARKING_IDS, Tlp
from indicator_exchange.stix.objects import parse_timestamp_us
from indicator_exchange.store.engine import make_engine, make_sessionmaker
from indicator_exchange.store.models import ApiKey
from indicator_exchange.taxii.filters import decode_cursor
from tests.conftest import BACKENDS, _worker, make_settings, make_test_database
from tests.fixtures.factories import TAXII_ACCEPT, TAXII_POST, Key, make_collection, make_indicator, make_key
from tests.fixtures.postgres import drop_database

PRODUCER_IDENTITY = "identity--0a9d4f6e-7b1c-4e2a-9f3d-5c6b7a8e9d01"
CLEARANCES = {"clear": 0, "green": 1, "amber": 2, "amber+strict": 3, "red": 4}
READERS = [f"read_{level}" for level in CLEARANCES]
UNAUTHENTICATED = ["anonymous", "revoked", "expired"]
CREDENTIALS = [*UNAUTHENTICATED, "no_grant", *READERS, "write_only", "admin"]
READER_ADMIN = [*READERS, "admin"]
ADMIN_CLEARANCE = 3  # amber+strict: admins read every collection but only up to their own clearance
V1, V2 = "2026-02-24T12:00:00.000Z", "2026-02-25T12:00:00.000Z"
GRANULAR_RED = {"marking_ref": Tlp.RED.marking_id, "selectors": ["pattern"]}


@dataclass(frozen=True)
class Version:
    modified: str
    tlp: int  # effective TLP (after the collection default)


@dataclass(frozen=True)
class StixObject:
    name: str
    id: str
    versions: tuple[Version, ...]


def _obj(n: int, **overrides: object) -> dict[str, object]:
    return make_indicator(n, created_by_ref=PRODUCER_IDENTITY, **overrides)  # type: ignore[arg-type]


def _world_objects() -> tuple[list[StixObject], list[dict[str, object]]]:
    """The objects (expected view) and the STIX to post, in posting order."""
    specs: list[tuple[str, int, list[tuple[str, int, dict[str, object]]]]] = [
        ("clear", 1, [(V1, 0, {"tlp": Tlp.CLEAR})]),
        ("green", 2, [(V1, 1, {"tlp": Tlp.GREEN}), (V2, 1, {"tlp": Tlp.GREEN})]),
        ("amber", 3, [(V1, 2, {"tlp": Tlp.AMBER})]),
        ("amber_strict", 4, [(V1, 3, {"tlp": Tlp.AMBER_STRICT})]),
        ("red", 5, [(V1, 4, {"tlp": Tlp.RED})]),
        ("unmarked", 6, [(V1, 2, {"tlp": None})]),
        ("tlp1_white", 7, [(V1, 0, {"tlp": None, "object_marking_refs": [TLP1_MARKING_IDS[Tlp.CLEAR]]})]),
        ("tlp1_red", 8, [(V1, 4, {"tlp": None, "object_marking_refs": [TLP1_MARKING_IDS[Tlp.RED]]})]),
        ("granular_red", 9, [(V1, 4, {"tlp": Tlp.GREEN, "granular_markings": [GRANULAR_RED]})]),
        ("escalated", 10, [(V1, 1, {"tlp": Tlp.GREEN}), (V2, 4, {"tlp": Tlp.RED})]),
    ]
    objects: list[StixObject] = []
    posts: list[dict[str, object]] = []
    for name, n, versions in specs:
        stix_id = str(make_indicator(n)["id"])
        objects.append(StixObject(name, stix_id, tuple(Version(modified, tlp) for modified, tlp, _ in versions)))
        for modified, _, overrides in versions:
            posts.append(_obj(n, modified=modified, **overrides))
    return objects, posts


OBJECTS, POSTS = _world_objects()
BY_NAME = {o.name: o for o in OBJECTS}


def clearance_of(who: str) -> int:
    if who == "admin":
        return ADMIN_CLEARANCE
    if who.startswith("read_"):
        return CLEARANCES[who.removeprefix("read_")]
    return 4


def latest_visible(who: str) -> list[str]:
    """Ids served by the default ``match[version]=last``: the latest version, if within clearance."""
    level = clearance_of(who)
    return [o.id for o in OBJECTS if o.versions[-1].tlp <= level]


def versions_visible(obj: StixObject, who: str) -> list[str]:
    return [v.modified for v in obj.versions if v.tlp <= clearance_of(who)]


def can_read(who: str) -> bool:
    return who.startswith("read_") or who == "admin"


@dataclass
class World:
    client: TestClient
    collection: uuid.UUID
    other: uuid.UUID
    status_id: str
    keys: dict[str, Key] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        if who == "anonymous":
            return dict(TAXII_ACCEPT)
        return self.keys[who].basic

    def url(self, suffix: str = "") -> str:
        return f"/api1/collections/{self.collection}/{suffix}"


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    backend = str(request.param)
    admin_url = str(request.getfixturevalue("pg_admin_url")) if backend == "postgresql" else ""
    url = make_test_database(admin_url, tmp_path_factory, backend, "authmatrix")
    engine = make_engine(url, pool_size=2)
    with make_sessionmaker(engine)() as session:
        collection = make_collection(session, default_tlp="amber")
        other = make_collection(session, title="Other", default_tlp="green")
        keys: dict[str, Key] = {}
        keys["producer"] = make_key(
            session, "producer", clearance="red", read=[collection], write=[collection], identity_ref=PRODUCER_IDENTITY
        )
        keys["no_grant"] = make_key(session, "no_grant", clearance="red", read=[other])
        for level in CLEARANCES:
            keys[f"read_{level}"] = make_key(session, f"read_{level}", clearance=level, read=[collection])
        keys["write_only"] = make_key(session, "write_only", clearance="red", write=[collection])
        keys["admin"] = make_key(session, "admin", kind="admin", clearance="amber+strict")
        revoked = admin.create_key(session, principal="read_red")
        admin.revoke_key(session, key_id=str(revoked["key_id"]))
        keys["revoked"] = Key("read_red", str(revoked["key_id"]), str(revoked["secret"]))
        expired = admin.create_key(session, principal="read_red", expires_at=datetime.now(UTC) + timedelta(hours=1))
        session.execute(
            update(ApiKey)
            .where(ApiKey.key_id == expired["key_id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        keys["expired"] = Key("read_red", str(expired["key_id"]), str(expired["secret"]))
        session.commit()
    with TestClient(create_app(make_settings(url))) as client:
        posted = client.post(
            f"/api1/collections/{collection}/objects/", headers=keys["producer"].post, json={"objects": POSTS}
        )
        assert posted.status_code == 202, posted.text
        assert posted.json()["failure_count"] == 0, posted.json()["failures"]
        yield World(client, collection, other, posted.json()["id"], keys)
    engine.dispose()
    if backend == "postgresql":
        drop_database(admin_url, f"ix_test_authmatrix_{_worker()}")


def _ids(response_json: dict[str, object], key: str = "objects") -> list[str]:
    items = response_json.get(key, [])
    assert isinstance(items, list)
    return [str(item["id"]) for item in items]


class TestServerAndCollections:
    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_discovery(self, world: World, who: str) -> None:
        response = world.client.get("/taxii2/", headers=world.headers(who))
        assert response.headers["content-type"] == "application/taxii+json;version=2.1"
        if who in UNAUTHENTICATED:
            assert response.status_code == 401
            return
        assert response.status_code == 200
        assert [r.rstrip("/").rsplit("/", 1)[-1] for r in response.json()["api_roots"]] == ["api1"]

    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_api_root(self, world: World, who: str) -> None:
        response = world.client.get("/api1/", headers=world.headers(who))
        assert response.status_code == (401 if who in UNAUTHENTICATED else 200)

    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_collections_lists_only_granted_ones(self, world: World, who: str) -> None:
        response = world.client.get("/api1/collections/", headers=world.headers(who))
        if who in UNAUTHENTICATED:
            assert response.status_code == 401
            return
        assert response.status_code == 200
        listed = {c["id"]: (c["can_read"], c["can_write"]) for c in response.json()["collections"]}
        expected = {
            "no_grant": {str(world.other): (True, False)},
            "write_only": {str(world.collection): (False, True)},
            "admin": {str(world.collection): (True, True), str(world.other): (True, True)},
        }.get(who, {str(world.collection): (True, False)})
        assert listed == expected

    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_collection(self, world: World, who: str) -> None:
        response = world.client.get(world.url(), headers=world.headers(who))
        expected = 401 if who in UNAUTHENTICATED else 404 if who == "no_grant" else 200  # non-disclosure
        assert response.status_code == expected
        assert response.headers["content-type"] == "application/taxii+json;version=2.1"

    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_status_belongs_to_its_poster(self, world: World, who: str) -> None:
        response = world.client.get(f"/api1/status/{world.status_id}/", headers=world.headers(who))
        assert response.status_code == (401 if who in UNAUTHENTICATED else 200 if who == "admin" else 404)

    def test_status_is_readable_by_its_poster(self, world: World) -> None:
        response = world.client.get(f"/api1/status/{world.status_id}/", headers=world.headers("producer"))
        assert response.status_code == 200
        assert response.json()["success_count"] == len(POSTS)


def _read_status(who: str) -> int:
    if who in UNAUTHENTICATED:
        return 401
    # TAXII 2.1 §5.4: no grant at all is 404 (as if the collection did not exist); a write-only grant is 403.
    return 200 if can_read(who) else 404 if who == "no_grant" else 403


class TestReads:
    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_objects(self, world: World, who: str) -> None:
        response = world.client.get(world.url("objects/"), headers=world.headers(who))
        assert response.status_code == _read_status(who)
        assert response.headers["content-type"] == "application/taxii+json;version=2.1"
        if response.status_code == 200:
            assert _ids(response.json()) == latest_visible(who)
            assert response.json()["more"] is False

    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_all_versions(self, world: World, who: str) -> None:
        response = world.client.get(world.url("objects/"), params={"match[version]": "all"}, headers=world.headers(who))
        assert response.status_code == _read_status(who)
        if response.status_code == 200:
            served = sorted((o["id"], o["modified"]) for o in response.json().get("objects", []))
            expected = sorted((o.id, m) for o in OBJECTS for m in versions_visible(o, who))
            assert served == expected

    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_manifest(self, world: World, who: str) -> None:
        response = world.client.get(world.url("manifest/"), headers=world.headers(who))
        assert response.status_code == _read_status(who)
        if response.status_code == 200:
            assert _ids(response.json()) == latest_visible(who)

    @pytest.mark.parametrize("who", READER_ADMIN)
    def test_paging_headers_cover_only_visible_objects(self, world: World, who: str) -> None:
        params = {"match[version]": "all"}
        full = world.client.get(world.url("objects/"), params=params, headers=world.headers(who))
        manifest = world.client.get(world.url("manifest/"), params=params, headers=world.headers(who)).json()
        stamps = [m["date_added"] for m in manifest["objects"]]
        assert full.headers["X-TAXII-Date-Added-First"] == stamps[0]
        assert full.headers["X-TAXII-Date-Added-Last"] == stamps[-1]

    @pytest.mark.parametrize("who", READER_ADMIN)
    @pytest.mark.parametrize("limit", [1, 2, 3])
    def test_pages_are_full_and_next_neither_skips_nor_leaks(self, world: World, who: str, limit: int) -> None:
        expected = [(o.id, m) for o in OBJECTS for m in versions_visible(o, who)]
        seen: list[tuple[str, str]] = []
        params: dict[str, str | int] = {"match[version]": "all", "limit": limit}
        pages = 0
        for _ in range(len(expected) + 2):  # bounded: a cursor that never advances fails, it does not hang
            response = world.client.get(world.url("objects/"), params=params, headers=world.headers(who))
            page = response.json()
            got = [(o["id"], o["modified"]) for o in page.get("objects", [])]
            pages += 1
            seen += got
            if not page["more"]:
                assert "next" not in page
                break
            assert len(got) == limit  # a page that says "more" is full
            # the token holds the position of the last object served, never of one the reader may not see
            last = parse_timestamp_us(response.headers["X-TAXII-Date-Added-Last"])
            assert decode_cursor(page["next"]).position == last
            params = {**params, "next": page["next"]}
        else:
            pytest.fail(f"paging with next did not end after {pages} pages")
        assert sorted(seen) == sorted(expected)
        assert len(seen) == len(set(seen))
        assert pages == max(1, -(-len(expected) // limit))

    @pytest.mark.parametrize("who", READER_ADMIN)
    def test_added_after_paging_by_the_last_header(self, world: World, who: str) -> None:
        params: dict[str, str | int] = {"match[version]": "all", "limit": 2}
        seen = 0
        total = sum(len(versions_visible(o, who)) for o in OBJECTS)
        for _ in range(total + 2):  # bounded: an inclusive added_after would repeat the last page forever
            response = world.client.get(world.url("objects/"), params=params, headers=world.headers(who))
            objects = response.json().get("objects", [])
            if not objects:
                break
            seen += len(objects)
            params = {**params, "added_after": response.headers["X-TAXII-Date-Added-Last"]}
        else:
            pytest.fail(f"paging by added_after did not end ({seen} objects seen)")
        assert seen == total


class TestOneObject:
    @pytest.mark.parametrize("who", CREDENTIALS)
    @pytest.mark.parametrize("name", list(BY_NAME))
    def test_object(self, world: World, who: str, name: str) -> None:
        obj = BY_NAME[name]
        response = world.client.get(world.url(f"objects/{obj.id}/"), headers=world.headers(who))
        visible_versions = versions_visible(obj, who)
        expected = _read_status(who)
        if expected == 200 and not visible_versions:
            expected = 404  # invisible objects do not exist for the reader (no 403 that would confirm them)
        assert response.status_code == expected
        if expected == 200:
            served = [(o["id"], o["modified"]) for o in response.json().get("objects", [])]
            latest = obj.versions[-1]
            assert served == ([(obj.id, latest.modified)] if latest.tlp <= clearance_of(who) else [])

    @pytest.mark.parametrize("who", CREDENTIALS)
    @pytest.mark.parametrize("name", list(BY_NAME))
    def test_versions(self, world: World, who: str, name: str) -> None:
        obj = BY_NAME[name]
        response = world.client.get(world.url(f"objects/{obj.id}/versions/"), headers=world.headers(who))
        visible_versions = versions_visible(obj, who)
        expected = _read_status(who)
        if expected == 200 and not visible_versions:
            expected = 404
        assert response.status_code == expected
        if expected == 200:
            assert response.json()["versions"] == visible_versions

    @pytest.mark.parametrize("who", ["read_clear", "read_red", "admin"])
    def test_an_object_of_another_collection_is_not_found(self, world: World, who: str) -> None:
        response = world.client.get(
            f"/api1/collections/{world.other}/objects/{OBJECTS[0].id}/", headers=world.headers(who)
        )
        assert response.status_code == 404  # no grant on it, or (admin) no such object: the same answer


class TestWritesAndDeletes:
    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_post_needs_a_write_grant(self, world: World, who: str) -> None:
        headers = {**world.headers(who), **TAXII_POST}
        response = world.client.post(world.url("objects/"), headers=headers, json={"objects": []})
        expected = {"write_only": 202, "admin": 202, "no_grant": 404}.get(who, 401 if who in UNAUTHENTICATED else 403)
        assert response.status_code == expected
        assert response.headers["content-type"] == "application/taxii+json;version=2.1"

    @pytest.mark.parametrize("who", CREDENTIALS)
    def test_delete_checks_the_grant_before_the_object(self, world: World, who: str) -> None:
        missing = f"indicator--{uuid.uuid4()}"
        response = world.client.delete(world.url(f"objects/{missing}/"), headers=world.headers(who))
        # TAXII 2.1 §5.7: delete needs read and write; either alone is 403, neither is 404.
        expected = 401 if who in UNAUTHENTICATED else 404 if who in ("no_grant", "admin") else 403
        assert response.status_code == expected

    @pytest.mark.parametrize("who", ["write_only", "read_red"])
    def test_delete_of_someone_elses_object_is_refused(self, world: World, who: str) -> None:
        response = world.client.delete(world.url(f"objects/{BY_NAME['clear'].id}/"), headers=world.headers(who))
        assert response.status_code == 403
        assert (
            world.client.get(
                world.url(f"objects/{BY_NAME['clear'].id}/"), headers=world.headers("read_red")
            ).status_code
            == 200
        )

    def test_admin_cannot_delete_above_its_clearance(self, world: World) -> None:
        response = world.client.delete(world.url(f"objects/{BY_NAME['red'].id}/"), headers=world.headers("admin"))
        assert response.status_code == 404


def test_basic_and_bearer_are_equivalent(world: World) -> None:
    key = world.keys["read_green"]
    token = base64.b64encode(f"{key.key_id}:{key.secret}".encode()).decode()
    basic = world.client.get(world.url("objects/"), headers={"Authorization": f"Basic {token}", **TAXII_ACCEPT})
    bearer = world.client.get(world.url("objects/"), headers=key.bearer)
    assert basic.status_code == bearer.status_code == 200
    assert basic.json() == bearer.json()
