"""A first end-to-end pass through the TAXII spine on both backends."""

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.fixtures.factories import envelope, make_collection, make_indicator, make_key, objects_url


class TestRoundTrip:
    def test_post_then_get_returns_the_object(self, client: TestClient, session: Session) -> None:
        collection = make_collection(session)
        key = make_key(session, "lab-a", read=[collection], write=[collection])
        session.commit()
        posted = client.post(objects_url(collection), headers=key.post, json=envelope(make_indicator(1)))
        assert posted.status_code == 202, posted.text
        assert posted.json()["success_count"] == 1
        got = client.get(objects_url(collection), headers=key.basic)
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/taxii+json;version=2.1"
        assert [o["id"] for o in got.json()["objects"]] == [make_indicator(1)["id"]]
