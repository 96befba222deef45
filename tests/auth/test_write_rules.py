"""Write rules: attribution, versioning by the creator only, identities, standard markings, clearance, delete."""

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.stix.markings import TLP1_MARKING_IDS, Tlp, tlp2_marking_definitions
from indicator_exchange.store.models import ObjectVersion, Principal
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url

LAB_A = "identity--aaaaaaaa-0000-4000-8000-000000000001"
LAB_B = "identity--bbbbbbbb-0000-4000-8000-000000000002"
V2 = "2026-02-25T12:00:00.000Z"


class Labs:
    def __init__(self, session: Session, *, default_tlp: str = "amber") -> None:
        self.collection = make_collection(session, default_tlp=default_tlp)
        c = [self.collection]
        self.a = make_key(session, "lab-a", clearance="amber", read=c, write=c, identity_ref=LAB_A)
        self.b = make_key(session, "lab-b", clearance="red", read=c, write=c, identity_ref=LAB_B)
        self.admin = make_key(session, "ops", kind="admin", clearance="amber")
        self.reader = make_key(session, "reader", clearance="red", read=c)
        session.commit()
        self.url = objects_url(self.collection)

    def post(self, client: TestClient, key: Key, *objects: dict[str, object]) -> dict[str, object]:
        response = client.post(self.url, headers=key.post, json=envelope(*objects))
        assert response.status_code == 202, response.text
        body: dict[str, object] = response.json()
        return body


def _failed(status: dict[str, object]) -> dict[str, str]:
    failures = status["failures"]
    assert isinstance(failures, list)
    return {f["id"]: f.get("message", "") for f in failures}


def _ok(status: dict[str, object]) -> list[str]:
    successes = status["successes"]
    assert isinstance(successes, list)
    return [s["id"] for s in successes]


class TestAttribution:
    def test_own_identity_is_accepted(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        obj = make_indicator(1, created_by_ref=LAB_A)
        assert _ok(labs.post(client, labs.a, obj)) == [obj["id"]]

    def test_another_identity_is_refused_per_object(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        mine, theirs = make_indicator(1, created_by_ref=LAB_A), make_indicator(2, created_by_ref=LAB_B)
        status = labs.post(client, labs.a, mine, theirs)
        assert _ok(status) == [mine["id"]]
        assert "is not your identity" in _failed(status)[str(theirs["id"])]

    def test_unattributed_objects_are_kept_verbatim_with_the_poster_recorded(
        self, client: TestClient, session: Session
    ) -> None:
        labs = Labs(session)
        obj = make_indicator(1)
        assert _ok(labs.post(client, labs.a, obj)) == [obj["id"]]
        row = session.execute(select(ObjectVersion).where(ObjectVersion.stix_id == obj["id"])).scalar_one()
        poster = session.execute(select(Principal).where(Principal.name == "lab-a")).scalar_one()
        assert row.added_by == poster.id
        assert row.created_by_ref is None
        session.rollback()  # release SQLite's write lock: the app audits the next request
        served = client.get(f"{labs.url}{obj['id']}/", headers=labs.reader.basic).json()["objects"][0]
        assert served == obj  # not stamped: the producer's object is served exactly as posted

    def test_admins_are_exempt_from_attribution(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        obj = make_indicator(1, created_by_ref=LAB_B)
        assert _ok(labs.post(client, labs.admin, obj)) == [obj["id"]]

    def test_nobody_posts_above_their_clearance_not_even_admins(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        red = make_indicator(1, tlp=Tlp.RED, created_by_ref=LAB_A)
        tlp1_red = make_indicator(2, tlp=None, object_marking_refs=[TLP1_MARKING_IDS[Tlp.RED]])
        assert set(_failed(labs.post(client, labs.a, red, tlp1_red))) == {red["id"], tlp1_red["id"]}
        assert set(_failed(labs.post(client, labs.admin, red))) == {red["id"]}

    def test_unmarked_objects_are_judged_at_the_collection_default(self, client: TestClient, session: Session) -> None:
        labs = Labs(session, default_tlp="red")
        unmarked = make_indicator(1, tlp=None)
        assert "above your clearance" in _failed(labs.post(client, labs.a, unmarked))[str(unmarked["id"])]
        assert _ok(labs.post(client, labs.b, unmarked)) == [unmarked["id"]]


class TestVersions:
    def test_the_creator_adds_versions(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        labs.post(client, labs.a, make_indicator(1, created_by_ref=LAB_A))
        newer = make_indicator(1, created_by_ref=LAB_A, modified=V2)
        assert _ok(labs.post(client, labs.a, newer)) == [newer["id"]]

    def test_another_lab_cannot_version_an_attributed_object(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        labs.post(client, labs.a, make_indicator(1, created_by_ref=LAB_A))
        as_own = make_indicator(1, created_by_ref=LAB_B, modified=V2)
        unattributed = make_indicator(1, modified="2026-02-26T12:00:00.000Z")
        status = labs.post(client, labs.b, as_own, unattributed)
        assert status["failure_count"] == 2
        assert set(_failed(status).values()) == {"only the object's creator may add versions to it"}

    def test_another_lab_cannot_version_an_unattributed_object(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        labs.post(client, labs.a, make_indicator(1))
        status = labs.post(client, labs.b, make_indicator(1, modified=V2))
        assert list(_failed(status).values()) == ["only the object's creator may add versions to it"]
        assert _ok(labs.post(client, labs.a, make_indicator(1, modified=V2))) == [make_indicator(1)["id"]]

    def test_reposting_a_shared_sco_is_an_idempotent_success(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        sco = {"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}", "value": "46.112.100.7"}
        labs.post(client, labs.a, sco)
        assert _ok(labs.post(client, labs.b, sco)) == [sco["id"]]
        altered = {**sco, "value": "46.112.100.8"}
        assert str(sco["id"]) in _failed(labs.post(client, labs.b, altered))

    def test_admins_may_version_any_object(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        labs.post(client, labs.a, make_indicator(1, created_by_ref=LAB_A))
        revoked = make_indicator(1, created_by_ref=LAB_A, modified=V2, revoked=True)
        assert _ok(labs.post(client, labs.admin, revoked)) == [revoked["id"]]


class TestIdentitiesAndMarkings:
    def _identity(self, identity_id: str, name: str, **extra: object) -> dict[str, object]:
        stamp = "2026-01-01T00:00:00.000Z"
        return {
            "type": "identity",
            "spec_version": "2.1",
            "id": identity_id,
            "created": stamp,
            "modified": stamp,
            "name": name,
            "identity_class": "organization",
            **extra,
        }

    def test_a_lab_publishes_its_own_identity(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        assert _ok(labs.post(client, labs.a, self._identity(LAB_A, "Lab A"))) == [LAB_A]

    def test_nobody_speaks_for_another_principal(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        spoof = self._identity(LAB_B, "Lab B (not really)", created_by_ref=LAB_A)
        assert "belongs to another principal" in _failed(labs.post(client, labs.a, spoof))[LAB_B]
        assert _ok(labs.post(client, labs.b, self._identity(LAB_B, "Lab B"))) == [LAB_B]

    def test_canonical_tlp_definitions_are_accepted_from_anyone(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        definitions = tlp2_marking_definitions([Tlp.CLEAR, Tlp.GREEN])
        status = labs.post(client, labs.a, *definitions)
        assert _ok(status) == [d["id"] for d in definitions]
        stored = session.execute(select(ObjectVersion.stix_id).where(ObjectVersion.stix_type == "marking-definition"))
        assert {row[0] for row in stored} == {d["id"] for d in definitions}

    def test_a_redefined_standard_marking_is_acknowledged_not_stored(
        self, client: TestClient, session: Session
    ) -> None:
        labs = Labs(session)
        bogus = {**tlp2_marking_definitions([Tlp.RED])[0], "name": "TLP:CLEAR"}
        status = labs.post(client, labs.a, bogus)
        assert _ok(status) == [Tlp.RED.marking_id]
        assert "canonical" in status["successes"][0]["message"]  # type: ignore[index]
        assert session.execute(select(ObjectVersion).where(ObjectVersion.stix_id == bogus["id"])).first() is None


class TestDelete:
    def test_only_the_owner_or_an_admin_deletes(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        first, second = make_indicator(1, created_by_ref=LAB_A), make_indicator(2)
        labs.post(client, labs.a, first, second)
        for key in (labs.b, labs.reader):
            assert client.delete(f"{labs.url}{first['id']}/", headers=key.basic).status_code == 403
        assert client.delete(f"{labs.url}{first['id']}/", headers=labs.a.basic).status_code == 200
        assert client.delete(f"{labs.url}{second['id']}/", headers=labs.admin.basic).status_code == 200
        remaining = client.get(labs.url, headers=labs.reader.basic).json()
        assert remaining == {"more": False}

    def test_an_object_above_the_callers_clearance_is_not_found(self, client: TestClient, session: Session) -> None:
        labs = Labs(session)
        red = make_indicator(1, tlp=Tlp.RED, created_by_ref=LAB_B)
        labs.post(client, labs.b, red)
        assert client.delete(f"{labs.url}{red['id']}/", headers=labs.a.basic).status_code == 404
        assert client.delete(f"{labs.url}{red['id']}/", headers=labs.admin.basic).status_code == 404
        assert client.delete(f"{labs.url}{red['id']}/", headers=labs.b.basic).status_code == 200
