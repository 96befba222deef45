"""The service caller background jobs write as: the ordinary write rules, never an admin's pass."""

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.auth.service import Access, Caller, authenticate
from indicator_exchange.auth.service_caller import SERVICE_KIND, service_caller
from indicator_exchange.errors import NotPermitted
from indicator_exchange.store import catalog
from indicator_exchange.store.models import AuditEvent
from indicator_exchange.taxii import service as taxii
from tests.fixtures.factories import make_collection, make_indicator, make_key

SERVICE = "identity--5e5e5e5e-0000-4000-8000-000000000001"
OTHER = "identity--0e0e0e0e-0000-4000-8000-000000000002"


def requester(session: Session, writable: uuid.UUID, readable: uuid.UUID) -> Caller:
    key = make_key(session, "lab", clearance="green", read=[writable, readable], write=[writable])
    session.commit()
    return authenticate(session, key.bearer["Authorization"])


class TestServiceCaller:
    def test_is_a_named_service_not_an_admin(self, session: Session) -> None:
        mine, theirs = make_collection(session), make_collection(session)
        lab = requester(session, mine, theirs)
        writer = service_caller(job="match-sightings", identity_ref=SERVICE, on_behalf_of=lab, writable=[mine])
        assert (writer.kind, writer.is_admin, writer.name) == (SERVICE_KIND, False, "service:match-sightings")
        assert writer.principal_id == lab.principal_id  # rows it adds are recorded as the requester's
        assert writer.access(mine) == Access(can_read=False, can_write=True)
        assert writer.access(theirs) == Access(can_read=False, can_write=False)
        assert writer.audit_text == f"service caller match-sightings (identity {SERVICE}) for lab"

    def test_cannot_be_given_a_collection_its_requester_may_not_write(self, session: Session) -> None:
        mine, theirs = make_collection(session), make_collection(session)
        lab = requester(session, mine, theirs)
        with pytest.raises(ValueError, match="only where its requester may"):
            service_caller(job="j", identity_ref=SERVICE, on_behalf_of=lab, writable=[theirs])

    def test_writes_its_own_objects_and_is_refused_anyone_elses(self, session: Session) -> None:
        mine, theirs = make_collection(session), make_collection(session)
        lab = requester(session, mine, theirs)
        writer = service_caller(job="j", identity_ref=SERVICE, on_behalf_of=lab, writable=[mine])
        collection = catalog.get_collection_by_id(session, mine)
        assert collection is not None
        root = catalog.get_api_root_by_id(session, collection.api_root_id)
        assert root is not None
        own, forged = make_indicator(1, created_by_ref=SERVICE), make_indicator(2, created_by_ref=OTHER)
        status = taxii.add_objects(session, root=root, collection=collection, caller=writer, objects=[own, forged])
        assert (status.success_count, status.failure_count) == (1, 1)
        assert "not your identity" in str(status.failures[0]["message"])
        other = catalog.get_collection_by_id(session, theirs)
        assert other is not None
        with pytest.raises(NotPermitted):
            taxii.add_objects(session, root=root, collection=other, caller=writer, objects=[own])
        session.rollback()


class TestSightingsAudit:
    def test_the_match_request_names_the_service_caller(self, client: TestClient, session: Session) -> None:
        from tests.match.test_match_api import events, seed

        _, _, _, writer = seed(client, session)
        auth = {"Authorization": writer.bearer["Authorization"]}
        result = client.post("/api/v1/match", params={"sightings": "true"}, json=events(), headers=auth).json()
        assert result["sightings"] == {"sightings": 2, "skipped": 0}
        session.expire_all()
        details = session.execute(select(AuditEvent.detail).where(AuditEvent.path == "/api/v1/match")).scalars()
        assert [d for d in details if d and "service caller match-sightings" in d], "no audit row names it"
