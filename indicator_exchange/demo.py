"""The demo: an API root, collections, principals with keys, and sample indicators, loaded idempotently."""

import uuid
from dataclasses import dataclass, field

import orjson
from sqlalchemy.orm import Session

from indicator_exchange.admin import service as admin
from indicator_exchange.auth.service import Caller
from indicator_exchange.settings import Settings
from indicator_exchange.stix.markings import Tlp, tlp2_marking_definitions
from indicator_exchange.store import catalog
from indicator_exchange.taxii import service as taxii

DEMO_ROOT = "demo"
DEMO_COLLECTION_ID = uuid.UUID("5f3c1a2e-8d4b-4c6f-9e1a-2b7d0c9e4f11")
PARTNER_COLLECTION_ID = uuid.UUID("9a7e2c41-3b5d-4f08-a6c2-d1e4f7b80a23")


@dataclass
class DemoInfo:
    collection_id: uuid.UUID
    keys: dict[str, dict[str, object]] = field(default_factory=dict)
    objects_loaded: int = 0

    def describe(self, base: str) -> str:
        partner = self.keys["demo-partner"]
        key_id, secret = partner["key_id"], partner["secret"]
        url = f"{base}/{DEMO_ROOT}/collections/{self.collection_id}/objects/"
        lines = [
            "",
            "indicator-exchange demo",
            f"  TAXII discovery : {base}/taxii2/",
            f"  collection      : {url}",
            f"  objects loaded  : {self.objects_loaded}",
            "",
            "  API keys (shown once; each run of the demo issues new ones):",
        ]
        for name, key in self.keys.items():
            lines.append(f"    {name:<16} key id {key['key_id']}  secret {key['secret']}")
        lines += [
            "",
            "  Try it:",
            f"    curl -u '{key_id}:{secret}' -H 'Accept: application/taxii+json;version=2.1' '{url}?limit=5'",
            "",
            '    python -c "from taxii2client.v21 import Collection; '
            f"c = Collection('{url[: -len('objects/')]}', user='{key_id}', password='{secret}'); "
            "print(len(c.get_objects()['objects']))\"",
            "",
            f"  API docs: {base}/docs",
            "",
        ]
        return "\n".join(lines)


def _sample_indicators(settings: Settings) -> list[dict[str, object]]:
    """A residential proxy pool of a hydra cluster, as a detector would publish it."""
    objects: list[dict[str, object]] = list(tlp2_marking_definitions())
    objects.append(
        {
            "type": "identity",
            "spec_version": "2.1",
            "id": settings.identity_id,
            "created": "2026-01-01T00:00:00.000Z",
            "modified": "2026-01-01T00:00:00.000Z",
            "name": settings.organisation_name,
            "identity_class": "organization",
        }
    )
    for index in range(24):
        address = f"203.0.113.{10 + index}"
        objects.append(
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": f"indicator--{uuid.uuid5(DEMO_COLLECTION_ID, address)}",
                "created_by_ref": settings.identity_id,
                "created": "2026-11-20T12:00:00.000Z",
                "modified": "2026-11-20T12:00:00.000Z",
                "name": f"Residential proxy exit {address}",
                "indicator_types": ["anonymization"],
                "pattern": f"[ipv4-addr:value = '{address}']",
                "pattern_type": "stix",
                "pattern_version": "2.1",
                "valid_from": "2026-11-20T12:00:00Z",
                "labels": ["residential-proxy"],
                "confidence": 60,
                "object_marking_refs": [Tlp.AMBER.marking_id if index % 3 else Tlp.GREEN.marking_id],
            }
        )
    return objects


def load_demo(session: Session, settings: Settings) -> DemoInfo:
    """Create (or reuse) the demo resources and issue fresh keys for the demo principals."""
    if catalog.get_api_root(session, DEMO_ROOT) is None:
        admin.create_api_root(session, name=DEMO_ROOT, title="Demo API root",
                              description="Distillation-attack indicators shared between AI labs")  # fmt: skip
        admin.create_collection(session, api_root=DEMO_ROOT, title="Distillation indicators",
                                collection_id=DEMO_COLLECTION_ID, alias="distillation",
                                description="Proxy IPs, prompt signatures and account patterns")  # fmt: skip
        admin.create_collection(session, api_root=DEMO_ROOT, title="Partner submissions",
                                collection_id=PARTNER_COLLECTION_ID, alias="partner-submissions",
                                default_tlp="green")  # fmt: skip
        admin.create_principal(session, name="demo-admin", kind="admin", clearance="red")
        admin.create_principal(session, name="demo-partner", kind="partner", clearance="amber",
                               organisation="Partner Lab")  # fmt: skip
        admin.create_principal(session, name="demo-detector", kind="detector", clearance="amber+strict",
                               identity_ref=settings.identity_id)  # fmt: skip
        admin.grant(session, principal="demo-partner", collection_id=DEMO_COLLECTION_ID, read=True, write=False)
        admin.grant(session, principal="demo-partner", collection_id=PARTNER_COLLECTION_ID, read=True, write=True)
        admin.grant(session, principal="demo-detector", collection_id=DEMO_COLLECTION_ID, read=True, write=True)
    info = DemoInfo(collection_id=DEMO_COLLECTION_ID)
    for name in ("demo-admin", "demo-partner", "demo-detector"):
        info.keys[name] = admin.create_key(session, principal=name)
    root = catalog.get_api_root(session, DEMO_ROOT)
    collection = catalog.get_collection_by_id(session, DEMO_COLLECTION_ID)
    assert root is not None
    assert collection is not None
    loader = Caller(principal_id=uuid.uuid4(), name="demo-loader", kind="admin", clearance=int(Tlp.RED),
                    key_id="demo", identity_ref=settings.identity_id)  # fmt: skip
    objects = orjson.loads(orjson.dumps(_sample_indicators(settings)))
    status = taxii.add_objects(session, root=root, collection=collection, caller=loader, objects=objects)
    info.objects_loaded = status.success_count
    return info
