"""TAXII 2.1 MUSTs at the door: no empty lists, the permission tables (§5), non-disclosure of collections
without a grant, and `next` tokens validated strictly and bound to their collection and filters."""

import base64
import dataclasses
import ssl
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.store.read_ahead import PollKey, poll_key
from indicator_exchange.store.read_filter import ReadFilter, Visibility
from indicator_exchange.taxii.filters import PageRequest, cursor_tag, encode_cursor
from tests.conftest import empty_database, slow_on
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url
from tests.fixtures.live_server import live_server, self_signed

TAXII = "application/taxii+json;version=2.1"
OBJECT = str(make_indicator(0)["id"])


def empty_lists(value: object, where: str = "$") -> list[str]:
    """Where ``value`` holds an empty list, recursively."""
    if isinstance(value, list):
        found = [] if value else [where]
        for index, item in enumerate(value):
            found += empty_lists(item, f"{where}[{index}]")
        return found
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in empty_lists(item, f"{where}.{key}")]
    return []


def _world(client: TestClient, session: Session) -> tuple[uuid.UUID, uuid.UUID, Key, Key]:
    """A collection with objects, an empty one, its owner, and a stranger with a grant on the empty one only."""
    full = make_collection(session)
    empty = make_collection(session, title="Empty")
    owner = make_key(session, "owner", read=[full, empty], write=[full, empty])
    stranger = make_key(session, "stranger", read=[empty])
    session.commit()
    posted = client.post(objects_url(full), headers=owner.post, json=envelope(make_indicator(0), make_indicator(1)))
    assert posted.status_code == 202
    return full, empty, owner, stranger


class TestNoEmptyLists:
    def test_no_taxii_response_holds_an_empty_list(self, client: TestClient, session: Session) -> None:
        seen: list[httpx.Response] = []
        client.event_hooks["response"].append(lambda response: seen.append(response))
        full, empty, owner, stranger = _world(client, session)
        nobody = make_key(session, "nobody")
        session.commit()
        posted = client.post(objects_url(full), headers=owner.post, json=envelope(make_indicator(2), {"type": "x"}))
        ok = client.post(objects_url(empty), headers=owner.post, json=envelope(make_indicator(3))).json()
        failed = client.post(objects_url(full), headers=owner.post, json=envelope({"type": "x"})).json()
        for key in (owner, stranger, nobody):
            client.get("/taxii2/", headers=key.basic)
            client.get("/api1/", headers=key.basic)
            client.get("/api1/collections/", headers=key.basic)
            for collection in (full, empty, uuid.uuid4()):
                base = objects_url(collection)
                client.get(f"/api1/collections/{collection}/", headers=key.basic)
                client.get(base, headers=key.basic)
                client.get(base, headers=key.basic, params={"limit": 1})
                client.get(base, headers=key.basic, params={"match[type]": "campaign"})
                client.get(base.replace("objects", "manifest"), headers=key.basic)
                client.get(base.replace("objects", "manifest"), headers=key.basic, params={"match[id]": OBJECT})
                client.get(f"{base}{OBJECT}/", headers=key.basic)
                client.get(f"{base}{OBJECT}/versions/", headers=key.basic)
                client.get(base, headers=key.basic, params={"next": "bogus"})
            for status in (posted.json()["id"], ok["id"], failed["id"], str(uuid.uuid4())):
                client.get(f"/api1/status/{status}/", headers=key.basic)
        client.delete(f"{objects_url(full)}{make_indicator(1)['id']}/", headers=owner.basic)
        client.get(objects_url(full), headers={"Accept": TAXII})
        taxii = [r for r in seen if r.headers.get("content-type") == TAXII and r.content]
        assert len(taxii) > 100
        assert {r.status_code for r in taxii} >= {200, 202, 400, 401, 404}
        offending = {f"{r.request.method} {r.request.url}": empty_lists(r.json()) for r in taxii}
        assert {url: where for url, where in offending.items() if where} == {}
        # The status of an envelope with nothing stored has no "successes": it is omitted, not [].
        assert "successes" not in failed
        assert "failures" not in ok
        assert "pendings" not in ok
        none = client.get(objects_url(full), headers=owner.basic, params={"match[type]": "campaign"})
        assert none.json() == {"more": False}


def _hidden_and_missing(full: uuid.UUID) -> list[tuple[str, str, str]]:
    """(method, URL for the hidden collection, URL for a missing one) of every collection path."""
    missing = uuid.uuid4()
    paths = ["", "objects/", "manifest/", f"objects/{OBJECT}/", f"objects/{OBJECT}/versions/"]
    urls = [("GET", path) for path in paths] + [("POST", "objects/"), ("DELETE", f"objects/{OBJECT}/")]
    return [(m, f"/api1/collections/{full}/{p}", f"/api1/collections/{missing}/{p}") for m, p in urls]


class TestNonDisclosure:
    @pytest.mark.parametrize("index", range(7))
    def test_a_collection_without_a_grant_answers_as_a_missing_one(
        self, client: TestClient, session: Session, index: int
    ) -> None:
        full, _, _, stranger = _world(client, session)
        method, hidden_url, missing_url = _hidden_and_missing(full)[index]
        body = envelope(make_indicator(9)) if method == "POST" else None
        headers = stranger.post if method == "POST" else stranger.basic
        hidden = client.request(method, hidden_url, headers=headers, json=body)
        missing = client.request(method, missing_url, headers=headers, json=body)
        assert (hidden.status_code, missing.status_code) == (404, 404), hidden.text
        assert hidden.headers["content-type"] == missing.headers["content-type"] == TAXII
        missing_key = missing_url.split("/")[3]
        assert hidden.json() == {
            **missing.json(),
            "description": missing.json()["description"].replace(missing_key, str(full)),
        }

    def test_an_api_root_without_any_grant_answers_as_a_missing_one(self, client: TestClient, session: Session) -> None:
        make_collection(session, root="other")
        _, _, _, stranger = _world(client, session)
        hidden = client.get("/other/", headers=stranger.basic)
        missing = client.get("/nowhere/", headers=stranger.basic)
        assert (hidden.status_code, missing.status_code) == (404, 404)
        assert hidden.json()["description"] == missing.json()["description"].replace("nowhere", "other")
        assert client.get("/taxii2/", headers=stranger.basic).json()["api_roots"] == ["http://testserver/api1/"]

    def test_another_principals_status_answers_as_a_missing_one(self, client: TestClient, session: Session) -> None:
        _, empty, owner, stranger = _world(client, session)
        status_id = client.post(objects_url(empty), headers=owner.post, json=envelope(make_indicator(4))).json()["id"]
        hidden = client.get(f"/api1/status/{status_id}/", headers=stranger.basic)
        other = str(uuid.uuid4())
        missing = client.get(f"/api1/status/{other}/", headers=stranger.basic)
        assert (hidden.status_code, missing.status_code) == (404, 404)
        assert hidden.json()["description"] == missing.json()["description"].replace(other, status_id)

    def test_hidden_collections_are_not_listed(self, client: TestClient, session: Session) -> None:
        _, empty, _, stranger = _world(client, session)
        listed = client.get("/api1/collections/", headers=stranger.basic).json()["collections"]
        assert [c["id"] for c in listed] == [str(empty)]

    def test_after_a_read_ahead_a_stranger_still_gets_404(
        self, client: TestClient, session: Session, backend: str
    ) -> None:
        full, _, owner, stranger = _world(client, session)
        first = client.get(objects_url(full), headers=owner.basic, params={"limit": 1}).json()
        client.get(objects_url(full), headers=owner.basic, params={"limit": 1, "next": first["next"]})
        response = client.get(objects_url(full), headers=stranger.basic, params={"limit": 1, "next": first["next"]})
        assert response.status_code == 404


class TestDeletePermissions:
    @pytest.mark.parametrize(
        ("read", "write", "status"), [(True, True, 200), (False, True, 403), (True, False, 403), (False, False, 404)]
    )
    def test_delete_needs_read_and_write(
        self, client: TestClient, session: Session, read: bool, write: bool, status: int
    ) -> None:
        full, empty, _, _ = _world(client, session)
        # The deleter created the object (only creators may delete), then its grant is set for the test.
        deleter = make_key(session, "deleter", read=[full, empty], write=[full, empty])
        session.commit()
        assert client.post(objects_url(full), headers=deleter.post, json=envelope(make_indicator(7))).status_code == 202
        if read or write:
            admin.grant(session, principal="deleter", collection_id=full, read=read, write=write)
        else:
            admin.revoke_grant(session, principal="deleter", collection_id=full)
        session.commit()
        response = client.delete(f"{objects_url(full)}{make_indicator(7)['id']}/", headers=deleter.basic)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == TAXII


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


class TestNextTokens:
    @pytest.mark.parametrize(
        "token",
        [
            _token(f"ix2:{2**63}:{'0' * 16}"),
            _token(f"ix2:{'9' * 5000}:{'0' * 16}"),
            "9" * 5000,
            _token("ix2:-1:0000000000000000"),
            _token("ix2:007:0000000000000000"),
            _token("ix2:1:zz"),
            _token("ix1:" + "9" * 30),
            _token("ix1:1"),  # a token from before binding: refused, the client starts again
            "not-base64!",
            "",
        ],
    )
    def test_a_crafted_token_is_400(self, client: TestClient, session: Session, token: str) -> None:
        full, _, owner, _ = _world(client, session)
        for url in (
            objects_url(full),
            objects_url(full).replace("objects", "manifest"),
            f"{objects_url(full)}{OBJECT}/",
            f"{objects_url(full)}{OBJECT}/versions/",
        ):
            response = client.get(url, headers=owner.basic, params={"next": token})
            assert response.status_code == 400, (url, response.text)
            assert response.headers["content-type"] == TAXII
            assert response.json()["http_status"] == "400"

    def test_a_token_of_another_collection_or_other_filters_is_400(self, client: TestClient, session: Session) -> None:
        full, empty, owner, _ = _world(client, session)
        client.post(objects_url(empty), headers=owner.post, json=envelope(make_indicator(0), make_indicator(1)))
        page = client.get(objects_url(full), headers=owner.basic, params={"limit": 1}).json()
        token = page["next"]
        assert client.get(objects_url(full), headers=owner.basic, params={"limit": 1, "next": token}).status_code == 200
        elsewhere = client.get(objects_url(empty), headers=owner.basic, params={"limit": 1, "next": token})
        assert elsewhere.status_code == 400
        for changed in ({"match[type]": "indicator"}, {"match[version]": "all"}, {"match[spec_version]": "2.1"}):
            response = client.get(objects_url(full), headers=owner.basic, params={"limit": 1, "next": token, **changed})
            assert response.status_code == 400, changed
        # limit and added_after are not bound: they may change between pages.
        same = client.get(
            objects_url(full),
            headers=owner.basic,
            params={"limit": 5, "next": token, "added_after": "2020-01-01T00:00:00Z"},
        )
        assert same.status_code == 200
        assert len(same.json()["objects"]) == 1

    def test_a_token_is_the_same_whatever_the_order_of_filter_values(self) -> None:
        collection = uuid.uuid4()
        one = ReadFilter(types=["indicator", "campaign"])
        other = ReadFilter(types=["campaign", "indicator", "campaign"])
        assert encode_cursor(collection, one, 5) == encode_cursor(collection, other, 5)

    @pytest.mark.parametrize("limit", ["9" * 5000, "9" * 20, "-1", "0", "1.5", "1e3", "\u0661"])
    def test_a_bad_limit_is_400(self, client: TestClient, session: Session, limit: str) -> None:
        full, _, owner, _ = _world(client, session)
        response = client.get(objects_url(full), headers=owner.basic, params={"limit": limit})
        assert response.status_code == 400, response.text
        assert response.json()["http_status"] == "400"

    def test_a_large_limit_is_clamped(self, client: TestClient, session: Session) -> None:
        full, _, owner, _ = _world(client, session)
        response = client.get(objects_url(full), headers=owner.basic, params={"limit": str(2**63 - 1)})
        assert response.status_code == 200
        assert len(response.json()["objects"]) == 2


class TestBindingCoversEveryFilter:
    """A new filter field must reach both the token's binding and read-ahead's key, or pages go wrong."""

    CHANGED: dict[str, object] = {
        "ids": ("indicator--x",),
        "types": ("campaign",),
        "spec_versions": ("2.0",),
        "version_keywords": ("all",),
        "version_values": (1,),
        "added_after": 7,
        "limit": 3,
        "visibility": Visibility(clearance=3, default_tlp=0),
    }
    # Not bound into a token, on purpose: added_after and the token are both lower bounds (the stricter wins);
    # the page size may change between pages; visibility is the reader's, checked afresh on every read.
    UNBOUND = frozenset({"added_after", "limit", "visibility"})

    def test_every_read_filter_field_is_exercised_here(self) -> None:
        assert set(self.CHANGED) == {f.name for f in dataclasses.fields(ReadFilter)}
        assert {f.name for f in dataclasses.fields(PageRequest)} == {"filters", "after", "cursor"}

    @pytest.mark.parametrize("name", sorted(CHANGED))
    def test_a_changed_filter_changes_the_tag_and_the_poll_key(self, name: str) -> None:
        collection, base = uuid.uuid4(), ReadFilter()
        changed = dataclasses.replace(base, **{name: self.CHANGED[name]})  # type: ignore[arg-type]
        visibility = changed.visibility or Visibility(clearance=2, default_tlp=2)
        limit = changed.limit or 10
        key = poll_key(None, collection, visibility, changed, after=changed.added_after, limit=limit)
        base_key = poll_key(None, collection, Visibility(clearance=2, default_tlp=2), base, after=None, limit=10)
        if name in self.UNBOUND:
            assert cursor_tag(collection, changed, 5) == cursor_tag(collection, base, 5)
        else:
            assert cursor_tag(collection, changed, 5) != cursor_tag(collection, base, 5)
        assert key is None or key != base_key

    def test_poll_key_holds_the_filter_itself(self) -> None:
        key = poll_key(None, uuid.uuid4(), Visibility(2, 1), ReadFilter(types=["indicator"]), after=5, limit=10)
        assert key is not None
        assert {f.name for f in dataclasses.fields(PollKey)} == {"principal_id", "collection_id", "filter", "after"}
        assert key.filter == ReadFilter(types=("indicator",), visibility=Visibility(2, 1), limit=10)
        assert hash(key.filter) == hash(ReadFilter(types=["indicator"], visibility=Visibility(2, 1), limit=10))


class TestOverTls:
    @slow_on("postgresql")  # the same requests over TLS on SQLite guard the default run
    def test_non_disclosure_delete_rule_tokens_and_no_empty_lists_over_https(self, db_url: str, tmp_path: Path) -> None:
        empty_database(db_url)
        tls = self_signed(tmp_path)
        with live_server(db_url, tls=tls) as server:
            assert server.base.startswith("https://")
            server.cli("admin", "api-root", "create", "api1", "--title", "TLS")
            shared = server.cli_json("admin", "collection", "create", "--api-root", "api1", "--title", "shared")["id"]
            hidden = server.cli_json("admin", "collection", "create", "--api-root", "api1", "--title", "hidden")["id"]
            for name, grants in (("owner", [shared, hidden]), ("reader", [shared])):
                server.cli("admin", "principal", "create", name, "--clearance", "amber")
                for collection in grants:
                    server.cli("admin", "grant", name, str(collection), "--read", "--write")
            server.cli("admin", "grant", "reader", str(shared), "--read")  # read only: delete is 403
            keys = {name: server.cli_json("admin", "key", "create", name) for name in ("owner", "reader")}
            auth = {name: (str(k["key_id"]), str(k["secret"])) for name, k in keys.items()}
            with httpx.Client(
                base_url=server.base, verify=ssl.create_default_context(cafile=str(tls[0])), headers={"Accept": TAXII}
            ) as http:
                url = f"/api1/collections/{hidden}/objects/"
                body = {"objects": [make_indicator(0), make_indicator(1)]}
                posted = http.post(url, json=body, auth=auth["owner"], headers={"Content-Type": TAXII})
                assert posted.status_code == 202
                assert empty_lists(posted.json()) == []
                missing = http.get(f"/api1/collections/{uuid.uuid4()}/objects/", auth=auth["reader"])
                for response in (
                    http.get(url, auth=auth["reader"]),
                    http.get(url.replace("objects/", ""), auth=auth["reader"]),
                ):
                    assert response.status_code == missing.status_code == 404
                    assert response.json()["title"] == missing.json()["title"]
                other = f"/api1/collections/{shared}/objects/"
                assert http.post(other, json=body, auth=auth["owner"], headers={"Content-Type": TAXII}).is_success
                assert http.delete(f"{other}{OBJECT}/", auth=auth["reader"]).status_code == 403
                first = http.get(other, params={"limit": 1}, auth=auth["owner"]).json()
                assert http.get(url, params={"next": first["next"]}, auth=auth["owner"]).status_code == 400
                assert http.get(other, params={"next": first["next"]}, auth=auth["owner"]).status_code == 200
                empty = http.get(other, params={"match[type]": "campaign"}, auth=auth["owner"])
                assert empty.json() == {"more": False}
