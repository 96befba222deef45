"""Every reader can resolve what it receives: the publisher identity, the extension definitions and the TLP
marking-definitions are published at TLP:CLEAR, whatever the collection's default TLP and the reader's clearance.
"""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from indicator_exchange.settings import Settings, get_settings
from indicator_exchange.stix.extensions import EXT_LLM_PROMPT, EXT_PROXY_CONTEXT, extension_definitions
from indicator_exchange.stix.markings import TLP2_MARKING_IDS, Tlp
from indicator_exchange.stix.objects import inspect_object
from indicator_exchange.store import objects as store
from indicator_exchange.store.models import AuditEvent, ObjectVersion
from tests.fixtures.factories import Key, make_collection, make_key, objects_url
from tests.ingest.test_api import PROMPT, detection, push, without_proxy

IDENTITY = "identity--b3d6a1f0-5c1e-4e0a-9d1f-0c2f4a6b8e21"  # the default IX_IDENTITY_ID


def green_detections() -> list[dict[str, Any]]:
    """TLP:GREEN indicators of two extension-bearing kinds (the clusters' campaigns are AMBER: not for GREEN)."""
    return [
        detection(tlp="green"),
        without_proxy(detection(kind="prompt_signature", tlp="green", prompt_text=PROMPT, capability="tool-use")),
    ]


def seeded(session: Session) -> tuple[uuid.UUID, Key, Key]:
    """A collection whose default TLP is AMBER, a detector, and a partner cleared for TLP:GREEN only."""
    collection = make_collection(session, default_tlp="amber", alias="feed")
    detector = make_key(session, "det-1", kind="detector", clearance="red", read=[collection], write=[collection])
    partner = make_key(session, "green-lab", clearance="green", read=[collection])
    session.commit()
    return collection, detector, partner


def poll(client: TestClient, key: Key, collection: uuid.UUID) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "100"}
    for _ in range(20):  # bounded: a cursor that never advances fails the test
        response = client.get(objects_url(collection), headers=key.basic, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        objects += body.get("objects", [])
        if not body.get("more"):
            return objects
        params["next"] = body["next"]
    raise AssertionError("paging did not end")


def unresolved(objects: list[dict[str, Any]]) -> set[str]:
    """Ids that the objects name (created_by_ref, extension definitions, markings) but are not among them."""
    held = {str(o["id"]) for o in objects}
    named: set[str] = set()
    for obj in objects:
        if "created_by_ref" in obj:
            named.add(str(obj["created_by_ref"]))
        named |= {k for k in obj.get("extensions", {}) if k.startswith("extension-definition--")}
        named |= set(obj.get("object_marking_refs", []))
    # The TLP 2.0 extension is OASIS's, named inside the definitions themselves; no collection carries it.
    return named - held - {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"}


class TestGreenReaderOfAnAmberCollection:
    def test_resolves_everything_it_receives(self, client: TestClient, session: Session) -> None:
        collection, detector, partner = seeded(session)
        assert push(client, detector, green_detections()).json()["summary"]["created"] == 2
        received = poll(client, partner, collection)
        indicators = [o for o in received if o["type"] == "indicator"]
        assert len(indicators) == 3  # the proxy, and the prompt's exact and near-duplicate indicators
        assert all(Tlp.GREEN.marking_id in o["object_marking_refs"] for o in indicators)
        assert not any(o["type"] == "campaign" for o in received)  # AMBER stays withheld
        assert unresolved(received) == set()
        ids = {o["id"] for o in received}
        assert {IDENTITY, EXT_PROXY_CONTEXT, EXT_LLM_PROMPT, Tlp.CLEAR.marking_id, Tlp.GREEN.marking_id} <= ids

    def test_the_context_is_marked_clear(self, client: TestClient, session: Session) -> None:
        collection, detector, partner = seeded(session)
        push(client, detector, green_detections())
        context = [o for o in poll(client, partner, collection) if o["type"] in ("identity", "extension-definition")]
        assert {o["id"] for o in context} == {IDENTITY, EXT_PROXY_CONTEXT, EXT_LLM_PROMPT}
        assert all(o["object_marking_refs"] == [Tlp.CLEAR.marking_id] for o in context)

    def test_marking_definitions_are_filed_under_clear(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = seeded(session)
        push(client, detector, green_detections())
        session.rollback()
        rows = session.execute(
            select(ObjectVersion.stix_id, ObjectVersion.tlp).where(
                ObjectVersion.collection_id == collection, ObjectVersion.stix_type == "marking-definition"
            )
        ).all()
        assert {stix_id for stix_id, _ in rows} == {Tlp.CLEAR.marking_id, Tlp.GREEN.marking_id, Tlp.AMBER.marking_id}
        assert {tlp for _, tlp in rows} == {int(Tlp.CLEAR)}


def _store_unmarked(session: Session, collection: uuid.UUID, objects: list[dict[str, Any]]) -> None:
    """Store objects as the previous code published them (no marking: the collection's default TLP)."""
    versions = [store.version_of(obj, inspect_object(obj)) for obj in objects]
    store.lock_collection(session, collection)
    store.write_versions(session, collection, versions, now_us=1, added_by=None)
    session.commit()


class TestAnExistingStore:
    def test_the_next_publish_re_marks_identity_and_definitions(
        self, client: TestClient, session: Session, settings: Settings
    ) -> None:
        collection, detector, partner = seeded(session)
        old_identity = {
            "type": "identity",
            "spec_version": "2.1",
            "id": IDENTITY,
            "created": "2026-01-01T00:00:00.000Z",
            "modified": "2026-01-01T00:00:00.000Z",
            "name": settings.organisation_name,
            "identity_class": "organization",
            "sectors": ["technology"],
        }
        old_definition = {
            k: v for k, v in extension_definitions()[EXT_PROXY_CONTEXT].items() if k != "object_marking_refs"
        } | {"modified": "2026-02-24T12:00:00.000Z"}
        _store_unmarked(session, collection, [old_identity, old_definition])
        assert poll(client, partner, collection) == []  # unmarked: under the collection's AMBER default

        push(client, detector, [detection(tlp="green")])
        received = poll(client, partner, collection)
        assert unresolved(received) == set()
        identity = next(o for o in received if o["id"] == IDENTITY)
        assert identity["object_marking_refs"] == [Tlp.CLEAR.marking_id]
        versions = client.get(f"{objects_url(collection)}{IDENTITY}/versions/", headers=detector.basic).json()
        assert len(versions["versions"]) == 2  # the old version stays; the CLEAR one is the latest

    def test_a_repeat_publish_writes_the_context_once(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = seeded(session)
        push(client, detector, [detection(tlp="green")])
        push(client, detector, [detection(tlp="green", value="46.112.100.77")])
        session.rollback()
        identities = session.execute(
            select(ObjectVersion.version).where(
                ObjectVersion.collection_id == collection, ObjectVersion.stix_id == IDENTITY
            )
        ).all()
        assert len(identities) == 1


@pytest.fixture
def export_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("IX_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class TestDefaultExport:
    def test_a_green_export_resolves_and_counts_what_it_holds(
        self, client: TestClient, session: Session, export_env: None, tmp_path: Path
    ) -> None:
        _, detector, _ = seeded(session)
        push(client, detector, green_detections())
        target = tmp_path / "bundle.json"
        result = CliRunner().invoke(cli, ["export", "--collection", "feed", "--output", str(target)])
        assert result.exit_code == 0, result.output
        objects = json.loads(target.read_text())["objects"]
        assert unresolved(objects) == set()
        assert len({o["id"] for o in objects}) == len(objects)  # stored definitions are not repeated
        assert set(TLP2_MARKING_IDS.values()) <= {o["id"] for o in objects}
        assert f"exported {len(objects)} objects" in result.output

    def test_the_http_export_audits_what_the_bundle_holds(self, client: TestClient, session: Session) -> None:
        collection, detector, _ = seeded(session)
        compliance = make_key(session, "auditor", kind="compliance", clearance="green", read=[collection])
        session.commit()
        push(client, detector, green_detections())
        response = client.get("/api/v1/export", headers=compliance.bearer, params={"collection": "feed"})
        assert response.status_code == 200, response.text
        objects = orjson.loads(response.content)["objects"]
        assert unresolved(objects) == set()
        session.rollback()
        event = (
            session.execute(
                select(AuditEvent).where(AuditEvent.path == "/api/v1/export").order_by(AuditEvent.id.desc())
            )
            .scalars()
            .first()
        )
        assert event is not None
        assert event.object_count == len(objects)
