"""A first end-to-end pass through the TAXII spine on both backends."""

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.conftest import engine_for
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


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_lost_database_connection_is_a_503_then_the_pool_recovers(
    client: TestClient, session: Session, db_url: str
) -> None:
    """Pools are not pinged before use (a round trip per checkout): a restarted or failed-over database is
    found by the first request, which answers 503 with Retry-After; the next one works."""
    collection = make_collection(session)
    key = make_key(session, "lab-a", read=[collection])
    session.commit()
    assert client.get(objects_url(collection), headers=key.basic).status_code == 200
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    lost = client.get(objects_url(collection), headers=key.basic)
    assert lost.status_code == 503, lost.text
    assert lost.headers["retry-after"] == "1"
    assert lost.headers["content-type"] == "application/taxii+json;version=2.1"
    assert client.get(objects_url(collection), headers=key.basic).status_code == 200
    engine_for(db_url).dispose()  # the fixtures' own pooled connections died too
