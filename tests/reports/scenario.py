"""A sharing scenario driven through the public TAXII paths, with the figures a report of it must show.

Who does what (all inside the report window, which spans yesterday to tomorrow):
- detector det-1 (our identity) publishes 3 proxy IPs (GREEN), 2 prompt signatures (AMBER) and 1 account
  pattern (AMBER+STRICT, already expired), a campaign and two `indicates` relationships; then versions proxy 1
  and proxy 0 (confidence 60 -> 80, after a partner's sighting) and revokes proxy 2;
- detector det-2 (its own identity) publishes 1 proxy IP (CLEAR);
- detector "ingestor" pushes detections through the ingest API into its own collection: 2 proxy IPs (GREEN,
  detector edge-proxy-watch, cluster hydra-X), 1 prompt signature (AMBER, detector prompt-guard) and 1 detection
  that is refused (not an IP address);
- partner lab-a (AMBER) reads the collection twice (everything, then indicators only) and pushes 2 indicators,
  1 sighting of our proxy 0 and 1 invalid object into its inbox collection;
- partner lab-b (GREEN) reads once and is refused twice (a write, and a collection it has no grant on);
- someone calls with an unknown key; one of lab-b's keys is revoked.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.settings import Settings
from indicator_exchange.stix.markings import Tlp
from tests.fixtures.factories import Key, envelope, make_collection, make_key, objects_url

CAMPAIGN_NAME = "Hydra-7"


def stix_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def principal_identity(name: str) -> str:
    """The identity ``admin.create_principal`` derives for a principal created without one."""
    return f"identity--{uuid.uuid5(uuid.NAMESPACE_URL, 'indicator-exchange:principal:' + name)}"


def _uuid(text: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ix-report-test:{text}"))


def indicator(
    name: str, pattern: str, tlp: Tlp, creator: str, *, modified: str = "2026-02-24T12:00:00.000Z", **extra: object
) -> dict[str, object]:
    obj: dict[str, object] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{_uuid(name)}",
        "created": "2026-02-24T12:00:00.000Z",
        "modified": modified,
        "name": name,
        "indicator_types": ["anonymization" if "ipv4" in pattern else "malicious-activity"],
        "pattern": pattern,
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": "2026-02-24T12:00:00Z",
        "created_by_ref": creator,
        "object_marking_refs": [tlp.marking_id],
    }
    obj.update(extra)
    return obj


@dataclass
class Scenario:
    collection: uuid.UUID
    inbox: uuid.UUID
    keys: dict[str, Key]
    start: datetime
    end: datetime
    proxy_ids: list[str] = field(default_factory=list)
    keys_created: int = 0

    # --- the true figures ---
    totals = {"created": 10, "versioned": 2, "revoked": 1, "expired": 1}
    by_kind = {
        "proxy_ip": {"created": 6, "versioned": 2, "revoked": 1, "expired": 0},
        "prompt_signature": {"created": 3, "versioned": 0, "revoked": 0, "expired": 0},
        "account_pattern": {"created": 1, "versioned": 0, "revoked": 0, "expired": 1},
        "other": {"created": 0, "versioned": 0, "revoked": 0, "expired": 0},
    }
    by_tlp = {
        "clear": {"created": 1, "versioned": 0, "revoked": 0, "expired": 0},
        "green": {"created": 5, "versioned": 2, "revoked": 1, "expired": 0},
        "amber": {"created": 3, "versioned": 0, "revoked": 0, "expired": 0},
        "amber+strict": {"created": 1, "versioned": 0, "revoked": 0, "expired": 1},
        "red": {"created": 0, "versioned": 0, "revoked": 0, "expired": 0},
    }
    by_campaign = {
        CAMPAIGN_NAME: {"created": 2, "versioned": 1, "revoked": 0, "expired": 0},
        "Hydra cluster hydra-X": {"created": 2, "versioned": 0, "revoked": 0, "expired": 0},
        "(no campaign)": {"created": 6, "versioned": 1, "revoked": 1, "expired": 1},
    }
    organisation: str = ""

    @property
    def by_detector(self) -> dict[str, dict[str, int]]:
        """Our identity is labelled with the organisation's name; det-2's with the principal's."""
        return {
            self.organisation: {"created": 6, "versioned": 2, "revoked": 1, "expired": 1},
            "det-2": {"created": 1, "versioned": 0, "revoked": 0, "expired": 0},
            "edge-proxy-watch": {"created": 2, "versioned": 0, "revoked": 0, "expired": 0},
            "prompt-guard": {"created": 1, "versioned": 0, "revoked": 0, "expired": 0},
        }

    marking = "TLP:AMBER+STRICT"
    # lab-a: 10 objects (everything up to AMBER) + 6 indicators; lab-b: 6 objects up to GREEN
    served = {"lab-a": 16, "lab-b": 6}
    tlp_served = {"lab-a": {"clear": 2, "green": 8, "amber": 6}, "lab-b": {"clear": 1, "green": 5}}
    denied = {"lab-b": 2}
    received = {"objects": 3, "indicators": 2, "sightings": 1, "submitted": 4, "failed": 1}
    sightings = {
        "received": 1,
        "observations": 3,
        "indicators_sighted": 1,
        "of_our_indicators": 1,
        "confidence_raised": 1,
        "confidence_lowered": 0,
        "confidence_unchanged": 0,
    }
    rejected = 1
    keys_revoked = 1
    refused_detections = 1
    published_versions = 13  # 10 first versions + 2 updates + 1 revocation


def build(client: TestClient, session: Session, settings: Settings) -> Scenario:
    """Run the scenario; returns it with the window and keys. Needs an empty store."""
    now = datetime.now(UTC)
    ours = settings.identity_id
    collection = make_collection(session, title="Indicators", default_tlp="amber", alias="indicators")
    inbox = make_collection(session, title="Partner inbox", default_tlp="amber", alias="inbox")
    detections = make_collection(session, title="Detections", default_tlp="amber", alias="detections")
    keys = {
        "det-1": make_key(
            session, "det-1", kind="detector", clearance="red", read=[collection], write=[collection], identity_ref=ours
        ),
        "det-2": make_key(session, "det-2", kind="detector", clearance="red", write=[collection]),
        "lab-a": make_key(session, "lab-a", clearance="amber", read=[collection], write=[inbox]),
        "lab-b": make_key(session, "lab-b", clearance="green", read=[collection]),
        "compliance": make_key(session, "auditor", kind="compliance", clearance="red", read=[collection]),
        "compliance-amber": make_key(session, "auditor-amber", kind="compliance", clearance="amber"),
        "admin": make_key(session, "root", kind="admin", clearance="red"),
        "ingestor": make_key(session, "ingestor", kind="detector", clearance="red", write=[detections]),
    }
    spare = admin.create_key(session, principal="lab-b")
    admin.revoke_key(session, key_id=str(spare["key_id"]))
    session.commit()
    scenario = Scenario(
        collection=collection,
        inbox=inbox,
        keys=keys,
        start=now - timedelta(days=1),
        end=now + timedelta(days=1),
        keys_created=len(keys) + 1,
        organisation=settings.organisation_name,
    )
    det1, det2, lab_a, lab_b = keys["det-1"], keys["det-2"], keys["lab-a"], keys["lab-b"]
    det2_identity = principal_identity("det-2")

    proxies = [
        indicator(f"proxy {i}", f"[ipv4-addr:value = '46.112.100.{i}']", Tlp.GREEN, ours, confidence=60)
        for i in range(3)
    ]
    prompts = [
        indicator(f"prompt {i}", f"[x-llm-prompt:hashes.'SHA-256' = '{i:064x}']", Tlp.AMBER, ours) for i in range(2)
    ]
    expired_at = stix_time(now - timedelta(hours=1))
    account = indicator(
        "throwaway signups",
        "[email-addr:value MATCHES '^[a-z]{8}[0-9]{4}@mailinator\\\\.com$']",
        Tlp.AMBER_STRICT,
        ours,
        valid_until=expired_at,
    )
    campaign = {
        "type": "campaign",
        "spec_version": "2.1",
        "id": f"campaign--{_uuid('hydra')}",
        "created_by_ref": ours,
        "created": "2026-02-24T12:00:00.000Z",
        "modified": "2026-02-24T12:00:00.000Z",
        "name": CAMPAIGN_NAME,
        "object_marking_refs": [Tlp.AMBER.marking_id],
    }
    relationships = [
        {
            "type": "relationship",
            "spec_version": "2.1",
            "id": f"relationship--{_uuid('rel' + str(target['id']))}",
            "created_by_ref": ours,
            "created": "2026-02-24T12:00:00.000Z",
            "modified": "2026-02-24T12:00:00.000Z",
            "relationship_type": "indicates",
            "source_ref": target["id"],
            "target_ref": campaign["id"],
            "object_marking_refs": [Tlp.GREEN.marking_id],
        }
        for target in (proxies[0], prompts[0])
    ]
    identity = {
        "type": "identity",
        "spec_version": "2.1",
        "id": ours,
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": settings.organisation_name,
        "identity_class": "organization",
    }
    _post(client, collection, det1, identity, *proxies, *prompts, account, campaign, *relationships)
    _post(
        client,
        collection,
        det2,
        indicator("proxy det-2", "[ipv4-addr:value = '46.91.113.9']", Tlp.CLEAR, det2_identity),
    )
    _post(client, collection, det1, {**proxies[1], "modified": "2026-03-01T00:00:00.000Z", "confidence": 70})
    _post(client, collection, det1, {**proxies[2], "modified": "2026-03-02T00:00:00.000Z", "revoked": True})

    # The ingest API: three detections become indicators, one is refused.
    seen = {"first_seen": stix_time(now - timedelta(hours=6)), "last_seen": stix_time(now - timedelta(hours=1))}
    detected = [
        {
            "kind": "proxy_ip",
            "detector": "edge-proxy-watch",
            "value": f"46.133.2.{10 + i}",
            "confidence": 70,
            "tlp": "green",
            "cluster": "hydra-X",
            "proxy_kind": "residential",
            **seen,
        }
        for i in range(2)
    ] + [
        {
            "kind": "prompt_signature",
            "detector": "prompt-guard",
            "prompt_sha256": "a" * 64,
            "confidence": 80,
            "tlp": "amber",
            **seen,
        },
        {"kind": "proxy_ip", "detector": "edge-proxy-watch", "value": "not-an-ip", "confidence": 70, **seen},
    ]
    ingested = client.post(
        f"/api/v1/detections?collection={detections}", headers=keys["ingestor"].bearer, json=detected
    )
    assert ingested.status_code == 200, ingested.text
    assert ingested.json()["summary"]["created"] == 3, ingested.text
    assert ingested.json()["summary"]["rejected"] == 1, ingested.text

    # Partners read: lab-a everything, then indicators only; lab-b everything (GREEN and below).
    assert len(_get(client, collection, lab_a)) == 10
    assert len(_get(client, collection, lab_a, **{"match[type]": "indicator"})) == 6
    assert len(_get(client, collection, lab_b)) == 6
    # Refusals: lab-b cannot write, nor read the inbox; an unknown key is not accepted.
    refused = client.post(objects_url(collection), headers=lab_b.post, json=envelope(proxies[0]))
    assert refused.status_code == 403, refused.text
    assert client.get(objects_url(inbox), headers=lab_b.basic).status_code == 404  # no grant: not disclosed
    stranger = Key(principal="nobody", key_id="ixk_0000000000000000", secret="wrong")
    assert client.get(objects_url(collection), headers=stranger.basic).status_code == 401

    # lab-a pushes its own indicators, a sighting of our proxy 0, and one invalid object.
    theirs = principal_identity("lab-a")
    sighting = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{_uuid('sighting')}",
        "created_by_ref": theirs,
        "created": stix_time(now),
        "modified": stix_time(now),
        "sighting_of_ref": proxies[0]["id"],
        "count": 3,
        "object_marking_refs": [Tlp.GREEN.marking_id],
    }
    status = _post(
        client,
        inbox,
        lab_a,
        indicator("their proxy", "[ipv4-addr:value = '46.133.2.1']", Tlp.GREEN, theirs),
        indicator("their prompt", "[x-llm-prompt:hashes.'SHA-256' = '" + "f" * 64 + "']", Tlp.AMBER, theirs),
        sighting,
        {"type": "indicator", "spec_version": "2.1"},
        expect_failures=1,
    )
    assert status["success_count"] == 3
    # det-1 raises proxy 0's confidence after the sighting.
    _post(client, collection, det1, {**proxies[0], "modified": "2026-03-03T00:00:00.000Z", "confidence": 80})
    scenario.proxy_ids = [str(p["id"]) for p in proxies]
    return scenario


def _post(
    client: TestClient, collection: uuid.UUID, key: Key, *objects: dict[str, object], expect_failures: int = 0
) -> dict[str, object]:
    response = client.post(objects_url(collection), headers=key.post, json=envelope(*objects))
    assert response.status_code == 202, response.text
    body: dict[str, object] = response.json()
    assert body["failure_count"] == expect_failures, body
    return body


def _get(client: TestClient, collection: uuid.UUID, key: Key, **params: str) -> list[dict[str, object]]:
    response = client.get(objects_url(collection), headers=key.basic, params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    objects: list[dict[str, object]] = response.json().get("objects", [])
    return objects
