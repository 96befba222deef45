"""deliveries_of: "did principal X receive object Y, and when?" answered from one audit row per read."""

import uuid

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.audit.service import deliveries_of
from indicator_exchange.stix.markings import Tlp
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url

PRODUCER = "identity--cccccccc-0000-4000-8000-000000000003"
V2 = "2026-02-25T12:00:00.000Z"
X1, Y, Z, X2 = (make_indicator(n, created_by_ref=PRODUCER) for n in range(4))
Z = make_indicator(2, created_by_ref=PRODUCER, tlp=Tlp.RED)
Y2 = make_indicator(1, created_by_ref=PRODUCER, modified=V2)


class World:
    """X1, Y, Z (red), X2 posted in that order; partner P is cleared for green, Q too."""

    def __init__(self, client: TestClient, session: Session) -> None:
        self.client = client
        self.session = session
        self.collection = make_collection(session)
        c = [self.collection]
        self.producer = make_key(session, "producer", clearance="red", write=c, identity_ref=PRODUCER)
        self.p = make_key(session, "partner-p", clearance="green", read=c)
        self.q = make_key(session, "partner-q", clearance="green", read=c)
        session.commit()
        self.url = objects_url(self.collection)
        self.post(X1, Y, Z, X2)

    def post(self, *objects: dict[str, object]) -> None:
        response = self.client.post(self.url, headers=self.producer.post, json=envelope(*objects))
        assert response.json()["success_count"] == len(objects)

    def read(self, key: Key, suffix: str = "", **params: str) -> dict[str, object]:
        response = self.client.get(
            self.url.replace("objects/", suffix) if suffix else self.url, params=params, headers=key.basic
        )
        assert response.status_code in (200, 403, 404)
        body: dict[str, object] = response.json() if response.content else {}
        return body

    def delivered(self, obj: dict[str, object], who: str = "partner-p", **kwargs: object) -> list[tuple[str, str]]:
        found = deliveries_of(self.session, str(obj["id"]), who, **kwargs)  # type: ignore[arg-type]
        self.session.rollback()
        return [(d.kind, d.version or "") for d in found]


def _modified(obj: dict[str, object]) -> str:
    return str(obj["modified"])


class TestDeliveries:
    def test_a_read_that_served_the_object_is_a_delivery(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.p)
        found = deliveries_of(session, str(Y["id"]), "partner-p")
        assert [(d.kind, d.version, d.key_id, d.collection_id) for d in found] == [
            ("objects", _modified(Y), world.p.key_id, world.collection)
        ]

    def test_nothing_before_any_read(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        assert world.delivered(Y) == []

    def test_an_object_above_the_readers_clearance_was_not_delivered(
        self, client: TestClient, session: Session
    ) -> None:
        world = World(client, session)
        world.read(world.p)
        assert world.delivered(Z) == []

    def test_the_clearance_at_the_time_of_the_read_counts(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.p)
        admin.update_principal(session, name="partner-p", clearance="red")
        session.commit()
        assert world.delivered(Z) == []  # raised afterwards: the red object was still not served then

    def test_filters_that_excluded_the_object_are_honoured(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        served = world.read(world.p, **{"match[id]": f"{X1['id']},{X2['id']}"})
        assert [o["id"] for o in served["objects"]] == [X1["id"], X2["id"]]  # type: ignore[union-attr, index]
        assert world.delivered(Y) == []  # Y lies inside the served range but did not match
        assert world.delivered(X2) == [("objects", _modified(X2))]

    def test_type_filters_are_honoured(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.p, **{"match[type]": "indicator,malware"})
        world.read(world.p, **{"match[type]": "malware"})
        assert world.delivered(Y) == [("objects", _modified(Y))]

    def test_a_page_that_ended_before_the_object_did_not_deliver_it(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.p, limit="1")
        assert world.delivered(X1) == [("objects", _modified(X1))]
        assert world.delivered(Y) == []

    def test_each_version_is_traced_to_the_read_that_served_it(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.p)  # serves Y v1
        world.post(Y2)
        world.read(world.p)  # serves Y v2 only: v1 is no longer the latest
        world.read(world.p, **{"match[version]": "all"})  # both
        world.read(world.p, **{"match[version]": "first"})  # v1
        assert world.delivered(Y) == [
            ("objects", _modified(Y)),
            ("objects", _modified(Y2)),
            ("objects", _modified(Y)),
            ("objects", _modified(Y2)),
            ("objects", _modified(Y)),
        ]

    def test_exact_version_filters_are_honoured(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.post(Y2)
        world.read(world.p, **{"match[version]": V2})
        assert world.delivered(Y) == [("objects", V2)]

    def test_single_object_reads(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.p, f"objects/{X1['id']}/")
        assert world.delivered(Y) == []
        world.read(world.p, f"objects/{Y['id']}/")
        assert world.delivered(Y) == [("objects", _modified(Y))]

    def test_manifest_and_versions_reads_are_metadata_deliveries(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.p, "manifest/")
        world.read(world.p, f"objects/{Y['id']}/versions/")
        assert world.delivered(Y) == [("manifest", _modified(Y)), ("versions", _modified(Y))]
        assert world.delivered(Y, kinds=frozenset({"objects"})) == []

    def test_other_principals_reads_and_refused_reads_do_not_count(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.q)
        admin.grant(session, principal="partner-p", collection_id=world.collection, read=False, write=True)
        session.commit()
        world.read(world.p)  # 403 now
        assert world.delivered(Y) == []
        assert world.delivered(Y, who="partner-q") == [("objects", _modified(Y))]

    def test_the_same_object_in_two_collections(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        second = make_collection(session, title="Second")
        admin.grant(session, principal="producer", collection_id=second, read=False, write=True)
        admin.grant(session, principal="partner-p", collection_id=second, read=True, write=False)
        session.commit()
        client.post(objects_url(second), headers=world.producer.post, json=envelope(Y))
        client.get(objects_url(second), headers=world.p.basic)
        found = deliveries_of(session, str(Y["id"]), "partner-p")
        assert [d.collection_id for d in found] == [second]

    def test_an_unknown_object_or_principal(self, client: TestClient, session: Session) -> None:
        world = World(client, session)
        world.read(world.p)
        assert deliveries_of(session, f"indicator--{uuid.uuid4()}", "partner-p") == []
        principal_id = admin.get_principal(session, name="partner-p")["id"]
        assert len(deliveries_of(session, str(Y["id"]), uuid.UUID(str(principal_id)))) == 1
