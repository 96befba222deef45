"""Direct dispatch of polls (``taxii.direct``): the same functions as the FastAPI route, the same answers."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange import dependencies
from indicator_exchange.store.models import AuditEvent
from indicator_exchange.taxii import direct, routes
from tests.fixtures.factories import make_collection, make_key, objects_url


def _calls(dependant: object) -> set[object]:
    found: set[object] = set()
    for sub in getattr(dependant, "dependencies", []):
        found.add(sub.call)
        found |= _calls(sub)
    return found


def test_the_route_depends_on_exactly_what_direct_dispatch_calls() -> None:
    """Adding a dependency to the poll route must be mirrored in ``DirectPolls`` (which would skip it)."""
    route = direct.OBJECTS_ROUTE
    assert route.endpoint is routes.get_objects
    calls = _calls(route.dependant)
    assert calls - {dependencies._basic_scheme, dependencies._bearer_scheme} == {
        routes.negotiate,
        dependencies.get_provisional_caller,
        dependencies.get_settings_dep,
    }


def test_errors_come_from_the_apps_own_handlers(client: TestClient, session: Session) -> None:
    collection = make_collection(session)
    key = make_key(session, "lab-a", read=[collection])
    session.commit()
    url = objects_url(collection)
    unauthenticated = client.get(url, headers={"Accept": "application/taxii+json;version=2.1"})
    assert unauthenticated.status_code == 401
    assert "WWW-Authenticate" in unauthenticated.headers
    bad_limit = client.get(url, params={"limit": "x"}, headers=key.basic)
    assert bad_limit.status_code == 400
    assert bad_limit.json()["http_status"] == "400"
    assert bad_limit.headers["content-type"] == "application/taxii+json;version=2.1"
    assert client.get(url, headers={**key.basic, "Accept": "text/html"}).status_code == 406
    assert client.get(objects_url(collection, root="nowhere"), headers=key.basic).status_code == 404


def test_a_direct_poll_is_audited_like_a_routed_one(client: TestClient, session: Session) -> None:
    collection = make_collection(session)
    key = make_key(session, "lab-a", read=[collection])
    session.commit()
    assert client.get(objects_url(collection), params={"limit": "5"}, headers=key.basic).status_code == 200
    session.expire_all()
    event = session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
    assert (event.route, event.api_root, event.collection_id) == (direct.OBJECTS_ROUTE.path, "api1", collection)
    assert event.filters == {"limit": ["5"]}
    assert event.status_code == 200
    assert event.key_id == key.key_id


def test_polls_go_direct_and_other_paths_to_the_router(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the lane's caller lookup broken, a poll fails (it went direct) and a path under a non-TAXII prefix
    does not (the router answered it, as it would have anyway)."""
    collection = make_collection(session)
    key = make_key(session, "lab-a", read=[collection])
    session.commit()

    async def broken(*_: object) -> None:
        raise RuntimeError("direct dispatch used")

    monkeypatch.setattr(direct, "get_provisional_caller", broken)
    assert client.get(objects_url(collection), headers=key.basic).status_code == 500
    assert client.get("/api/collections/x/objects/", headers=key.basic).status_code == 404  # no API root "api"
