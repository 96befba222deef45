"""The demo: an API root, collections, principals with keys, and sample indicators, loaded idempotently."""

import shlex
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.auth.service import Access, Caller
from indicator_exchange.ingest.parsing import InputLine
from indicator_exchange.ingest.scenario import hydra_scenario
from indicator_exchange.ingest.service import ingest
from indicator_exchange.settings import Settings
from indicator_exchange.store import catalog, principals
from indicator_exchange.store import objects as store

DEMO_ROOT = "demo"
DEMO_COLLECTION_ID = uuid.UUID("5f3c1a2e-8d4b-4c6f-9e1a-2b7d0c9e4f11")
PARTNER_COLLECTION_ID = uuid.UUID("9a7e2c41-3b5d-4f08-a6c2-d1e4f7b80a23")
DEMO_PRINCIPALS = ("demo-admin", "demo-partner", "demo-detector")


@dataclass
class DemoInfo:
    collection_id: uuid.UUID
    keys: dict[str, dict[str, object]] = field(default_factory=dict)
    objects_loaded: int = 0
    detections: dict[str, int] = field(default_factory=dict)

    revoked: int = 0
    # The lifecycle loop (docs/lifecycle.md): a partner sighting, an FP quorum revoking one indicator, and a
    # detection a warninglist refused.
    lifecycle: list[str] = field(default_factory=list)
    database: str = ""
    # What the CLI example needs to find this database from any directory (never a PostgreSQL password).
    database_env: str = ""

    def describe(self, base: str) -> str:
        """What the demo prints: every example runs as printed, from any directory, without an activated venv
        (the venv's own ``python`` and ``indicator-exchange`` by absolute path)."""
        partner = self.keys["demo-partner"]
        key_id, secret = partner["key_id"], partner["secret"]
        url = f"{base}/{DEMO_ROOT}/collections/{self.collection_id}/objects/"
        python = shlex.quote(sys.executable)
        cli = shlex.quote(str(cli_path()))
        lines = [
            "",
            "indicator-exchange demo",
            f"  database        : {self.database}",
            f"  TAXII discovery : {base}/taxii2/",
            f"  collection      : {url}",
            f"  detections      : {self.detections}",
            f"  STIX objects    : {self.objects_loaded} (latest versions)",
            *(f"  lifecycle       : {line}" for line in self.lifecycle),
            "",
            "  API keys (shown once; each run of the demo issues new ones"
            + (f" and revoked the {self.revoked} of the previous run):" if self.revoked else "):"),
        ]
        for name, key in self.keys.items():
            lines.append(f"    {name:<16} key id {key['key_id']}  secret {key['secret']}")
        lines += [
            "",
            "  Try it:",
            f"    curl -u '{key_id}:{secret}' -H 'Accept: application/taxii+json;version=2.1' '{url}?limit=5'",
            "",
            f'    {python} -c "from taxii2client.v21 import Collection; '
            f"c = Collection('{url[: -len('objects/')]}', user='{key_id}', password='{secret}'); "
            "print(len(c.get_objects()['objects']))\"",
            "",
            f"  The CLI: {cli} --help   (or `source {shlex.quote(str(cli_path().parent / 'activate'))}` first)",
            f"    {self.database_env}{cli} admin collection list",
            "",
            f"  API docs: {base}/docs",
            "",
        ]
        return "\n".join(lines)


# A public DNS resolver reported as a proxy: the MISP warninglist of public resolvers refuses it.
REFUSED_DETECTION: dict[str, object] = {
    "kind": "proxy_ip",
    "detector": "proxy-graph",
    "value": "8.8.8.8",
    "proxy_kind": "datacenter",
    "confidence": 90,
    "tlp": "green",
    "first_seen": "2026-12-01T00:00:00Z",
    "last_seen": "2026-12-01T06:00:00Z",
}


def _feedback(session: Session, settings: Settings, refused: dict[str, str] | None, ids: list[list[str]]) -> list[str]:
    """Partner Lab sights one of our indicators; Partner Lab and Second Lab both call another a false positive,
    which revokes it (IX_FP_QUORUM = 2). Posted through the TAXII write path, as partners would."""
    from indicator_exchange.stix.ids import stix_timestamp
    from indicator_exchange.taxii import service as taxii

    lines = [f"detection refused: {refused['message']}" if refused else "no detection refused"]
    # The first proxy exit is the scenario's own false positive (revoked by its detector): the next two serve.
    indicators = [stix_id for group in ids[1:3] for stix_id in group]
    if len(indicators) < 2:
        return lines
    sighted, disputed = indicators[0], indicators[1]
    now = datetime.now(UTC)
    root = catalog.get_api_root(session, DEMO_ROOT)
    inbox = catalog.get_collection_by_id(session, PARTNER_COLLECTION_ID)
    assert root is not None
    assert inbox is not None
    stamp = stix_timestamp(now)
    for name, objects in (
        (
            "demo-partner",
            [
                {
                    "type": "sighting",
                    "spec_version": "2.1",
                    "id": f"sighting--{uuid.uuid4()}",
                    "created": stamp,
                    "modified": stamp,
                    "sighting_of_ref": sighted,
                    "count": 12,
                    "first_seen": stamp,
                    "last_seen": stamp,
                },
                {
                    "type": "opinion",
                    "spec_version": "2.1",
                    "id": f"opinion--{uuid.uuid4()}",
                    "created": stamp,
                    "modified": stamp,
                    "opinion": "disagree",
                    "object_refs": [disputed],
                    "explanation": "A university NAT: thousands of students behind it.",
                },
            ],
        ),
        (
            "demo-partner-2",
            [
                {
                    "type": "opinion",
                    "spec_version": "2.1",
                    "id": f"opinion--{uuid.uuid4()}",
                    "created": stamp,
                    "modified": stamp,
                    "opinion": "strongly-disagree",
                    "object_refs": [disputed],
                },
            ],
        ),
    ):
        principal = principals.get_principal(session, name)
        assert principal is not None
        partner = Caller(
            principal_id=principal.id,
            name=name,
            kind=principal.kind,
            clearance=principal.clearance,
            key_id="demo",
            identity_ref=None,
            organisation=principal.organisation,
            grants={DEMO_COLLECTION_ID: Access(True, False), PARTNER_COLLECTION_ID: Access(True, True)},
        )
        taxii.add_objects(
            session, root=root, collection=inbox, caller=partner, objects=list(objects), lifecycle=settings
        )
    lines.append(f"partner sighting of {sighted} (Partner Lab): a true positive")
    lines.append(f"false-positive quorum (Partner Lab, Second Lab) revoked {disputed}")
    return lines


def cli_path() -> Path:
    """The ``indicator-exchange`` script beside the running interpreter (the venv's ``bin``)."""
    return Path(sys.executable).parent / "indicator-exchange"


def load_demo(session: Session, settings: Settings) -> DemoInfo:
    """Create (or reuse) the demo resources and issue fresh keys for the demo principals."""
    if catalog.get_api_root(session, DEMO_ROOT) is None:
        admin.create_api_root(
            session,
            name=DEMO_ROOT,
            title="Demo API root",
            description="Distillation-attack indicators shared between AI labs",
        )
        admin.create_collection(
            session,
            api_root=DEMO_ROOT,
            title="Distillation indicators",
            collection_id=DEMO_COLLECTION_ID,
            alias="distillation",
            description="Proxy IPs, prompt signatures and account patterns",
        )
        admin.create_collection(
            session,
            api_root=DEMO_ROOT,
            title="Partner submissions",
            collection_id=PARTNER_COLLECTION_ID,
            alias="partner-submissions",
            default_tlp="green",
        )
        admin.create_principal(session, name="demo-admin", kind="admin", clearance="red")
        admin.create_principal(
            session, name="demo-partner", kind="partner", clearance="amber", organisation="Partner Lab"
        )
        admin.create_principal(
            session, name="demo-detector", kind="detector", clearance="amber+strict", identity_ref=settings.identity_id
        )
        admin.grant(session, principal="demo-partner", collection_id=DEMO_COLLECTION_ID, read=True, write=False)
        admin.grant(session, principal="demo-partner", collection_id=PARTNER_COLLECTION_ID, read=True, write=True)
        # A second partner organisation, without a key: its opinion makes the false-positive quorum of the demo.
        admin.create_principal(
            session, name="demo-partner-2", kind="partner", clearance="amber", organisation="Second Lab"
        )
        admin.grant(session, principal="demo-partner-2", collection_id=DEMO_COLLECTION_ID, read=True, write=False)
        admin.grant(session, principal="demo-partner-2", collection_id=PARTNER_COLLECTION_ID, read=True, write=True)
        admin.grant(session, principal="demo-detector", collection_id=DEMO_COLLECTION_ID, read=True, write=True)
    info = DemoInfo(collection_id=DEMO_COLLECTION_ID)
    for name in DEMO_PRINCIPALS:
        # Only the keys printed by this run stay valid: each earlier run's keys are revoked.
        for key in admin.list_keys(session, principal=name):
            if key["revoked_at"] is None:
                admin.revoke_key(session, key_id=str(key["key_id"]))
                info.revoked += 1
        info.keys[name] = admin.create_key(session, principal=name)
    collection = catalog.get_collection_by_id(session, DEMO_COLLECTION_ID)
    assert collection is not None
    detector = principals.get_principal(session, "demo-detector")
    assert detector is not None
    # The demo data goes through the same path as a detector's push: POST /api/v1/detections.
    caller = Caller(
        principal_id=detector.id,
        name=detector.name,
        kind=detector.kind,
        clearance=detector.clearance,
        key_id="demo",
        identity_ref=detector.identity_ref,
    )
    detections = [*hydra_scenario(), REFUSED_DETECTION]
    lines = [InputLine(line=n + 1, value=d) for n, d in enumerate(detections)]
    result = ingest(session, caller=caller, collection=collection, lines=lines, settings=settings)
    info.lifecycle = _feedback(session, settings, result.results[-1].error, [r.stix_ids for r in result.results])
    info.objects_loaded = store.count_objects(session, collection.id, store.Visibility(clearance=4, default_tlp=2))
    info.detections = result.counts()
    return info
