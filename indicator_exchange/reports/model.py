"""The sharing report: what we published, shared, received and refused in a window, under which marking.

One pydantic model is the report: the JSON format is its dump, CSV flattens it, HTML and PDF render it, and
``schemas/report.schema.json`` is its JSON Schema (kept in sync by a test). Times are UTC.
"""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Model):
    """The reporting window: ``start`` inclusive, ``end`` exclusive."""

    start: datetime
    end: datetime


class Filters(_Model):
    collections: list[str] = Field(default_factory=list, description="Collection ids in scope; empty means all.")
    partner: str | None = Field(None, description="Only this partner's sharing, receiving and exceptions.")
    clearance: str = Field(description="Objects above this TLP level are left out of every figure.")


class Counts(_Model):
    """Indicator life-cycle events in the window, counted once per indicator (versions once per version)."""

    created: int = 0
    versioned: int = 0
    revoked: int = 0
    expired: int = 0


class Breakdown(_Model):
    """Counts for one value of a dimension (a kind, a TLP level, a campaign, a detector)."""

    key: str
    label: str
    counts: Counts


class Published(_Model):
    """Our own indicators (from detectors and internal principals), derived from the stored STIX versions."""

    totals: Counts
    by_kind: list[Breakdown]
    by_tlp: list[Breakdown]
    by_campaign: list[Breakdown] = Field(description="Via `indicates` relationships; key `none` = no campaign.")
    by_detector: list[Breakdown] = Field(description="Detector name from ingest provenance, else created_by_ref.")


class SharedRow(_Model):
    """What one partner obtained from one collection (from the audit trail)."""

    partner: str
    collection_id: str | None
    collection_title: str | None
    requests: int = Field(description="Requests of any kind, allowed or not.")
    objects_served: int = Field(description="Objects returned by object reads (TAXII objects endpoints).")
    tlp_served: dict[str, int] = Field(
        description="Objects served by TLP level, reconstructed from the stored versions."
    )
    first_access: datetime | None = Field(description="First allowed request in the window.")
    last_access: datetime | None = Field(description="Last allowed request in the window.")
    denied: int = Field(description="Requests refused: 401, 403 or 429.")


class Shared(_Model):
    available: bool = Field(description="False when this store has no audit trail yet.")
    note: str | None = None
    rows: list[SharedRow] = Field(default_factory=list)
    requests: int = 0
    objects_served: int = 0
    denied: int = 0
    tlp_served: dict[str, int] = Field(default_factory=dict)


class ReceivedRow(_Model):
    """Objects that reached our collections from one partner: pushed to us (TAXII POST) or pulled by sync."""

    partner: str
    via: str = Field(description="push (the partner POSTed) or pull (we fetched their feed).")
    collection_id: str
    collection_title: str
    objects: int = Field(description="New object versions stored.")
    indicators: int = Field(description="Of which indicator versions.")
    sightings: int = Field(description="Of which sightings.")
    submitted: int = Field(0, description="Objects in the partner's POSTs (push only).")
    failed: int = Field(0, description="Objects refused (status failures, or rejected while pulling).")


class SightingEffect(_Model):
    indicator_id: str
    indicator_name: str | None
    sightings: int
    observations: int = Field(description="Sum of the sightings' `count` (1 when absent).")
    confidence_before: int | None = Field(description="Confidence of the indicator before its first sighting.")
    confidence_after: int | None = Field(description="Confidence of its latest version before the window ends.")


class Sightings(_Model):
    received: int = Field(description="Sighting objects received from partners in the window.")
    observations: int
    indicators_sighted: int
    of_our_indicators: int = Field(description="Sightings whose `sighting_of_ref` is one of our indicators.")
    confidence_raised: int
    confidence_lowered: int
    confidence_unchanged: int
    mean_confidence_change: float | None
    top: list[SightingEffect] = Field(description="The most-sighted indicators (at most 50).")


class Received(_Model):
    rows: list[ReceivedRow]
    objects: int
    sightings: Sightings


class Refusal(_Model):
    at: datetime
    principal: str | None = Field(description="The principal whose ingest request carried the detection.")
    detector: str | None
    kind: str | None
    field: str | None
    reason: str


class ReasonCount(_Model):
    reason: str
    count: int


class Rejection(_Model):
    at: datetime
    partner: str | None
    via: str = Field(description="push (TAXII POST status failure) or pull (sync rejection).")
    collection_id: str | None
    object_id: str | None
    reason: str


class KeyEvent(_Model):
    at: datetime
    key_id: str
    principal: str | None
    principal_kind: str | None


class Exceptions(_Model):
    refused_detections: int
    refusal_reasons: list[ReasonCount]
    refusals: list[Refusal] = Field(description="The latest refusals (at most 200).")
    rejected_objects: int
    rejection_reasons: list[ReasonCount]
    rejections: list[Rejection] = Field(description="The latest rejections (at most 200).")
    keys_created: list[KeyEvent]
    keys_revoked: list[KeyEvent]


class ActivityPoint(_Model):
    start: datetime
    published: int = Field(description="Our indicator versions stored.")
    received: int = Field(description="Object versions received from partners.")
    served: int = Field(description="Objects served to partners (audit trail).")
    denied: int = Field(description="Requests refused (audit trail).")


class Activity(_Model):
    bucket: str = Field(description="hour, day or week: chosen from the window's length.")
    points: list[ActivityPoint]


class LifecycleRevocation(_Model):
    at: datetime
    indicator_id: str
    reason: str
    organisations: list[str] = Field(description="The organisations whose false-positive votes counted.")


class Lifecycle(_Model):
    """Indicator lifecycle (docs/lifecycle.md): what decayed, what feedback revoked, what warninglists refused."""

    decayed: int = Field(description="Our active indicators below their kind's threshold at generated_at.")
    decayed_by_kind: list[ReasonCount] = Field(description="``reason`` is the lifecycle kind.")
    revoked_by_feedback: list[LifecycleRevocation] = Field(description="Revocations by feedback in the window.")
    extended: int = Field(description="valid_until extensions by partner true positives in the window.")
    refused_by_warninglist: list[ReasonCount] = Field(
        description="Detections refused in the window, per warninglist (``reason`` is the list's name)."
    )


class SharingReport(_Model):
    """Compliance report of one window (issue 6)."""

    schema_version: str = SCHEMA_VERSION
    generated_at: datetime
    organisation: str
    window: Window
    filters: Filters
    marking: str = Field(description="The highest TLP of what the report summarises, e.g. TLP:AMBER.")
    published: Published
    shared: Shared
    received: Received
    exceptions: Exceptions
    activity: Activity
    lifecycle: Lifecycle | None = None


def report_json_schema() -> dict[str, object]:
    """The JSON Schema of the JSON report, as published in ``schemas/report.schema.json``."""
    schema = SharingReport.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://indicator-exchange.example/schemas/report.schema.json",
        **schema,
    }
