"""Persistence for detector ingestion: latest stored versions, provenance records and refusals."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import select, true
from sqlalchemy.orm import Session

from indicator_exchange.store.bulk import insert_rows, one_of
from indicator_exchange.store.models import DetectionRecord, IngestRefusal, ObjectVersion


@dataclass(frozen=True, slots=True)
class DetectionFacts:
    """What the provenance table keeps of one detection (no raw prompt, no PII)."""

    detector: str
    kind: str
    cluster: str | None
    first_seen: datetime
    last_seen: datetime
    confidence: int
    accounts_linked: int | None
    requests: int | None


def latest_objects(session: Session, collection_id: uuid.UUID, ids: Sequence[str]) -> dict[str, dict[str, object]]:
    """The latest stored version of each of ``ids`` in the collection, parsed."""
    found: dict[str, dict[str, object]] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(ObjectVersion.stix_id, ObjectVersion.raw).where(
                ObjectVersion.collection_id == collection_id,
                ObjectVersion.is_latest == true(),
                one_of(session, ObjectVersion.stix_id, ids[start : start + 500]),
            )
        )
        for stix_id, raw in rows:
            found[stix_id] = orjson.loads(raw)
    return found


def record_detections(
    session: Session,
    *,
    collection_id: uuid.UUID,
    principal_id: uuid.UUID | None,
    records: Sequence[tuple[DetectionFacts, Sequence[str], str]],
) -> None:
    """One provenance row per (detection, indicator), inserted in one statement (the ORM unit of work was
    a third of ingest time at 1,000 detections per request)."""
    received_at = datetime.now(UTC)
    rows = [
        {
            "collection_id": collection_id,
            "indicator_id": indicator_id,
            "principal_id": principal_id,
            "detector": facts.detector,
            "kind": facts.kind,
            "cluster": facts.cluster,
            "first_seen": facts.first_seen,
            "last_seen": facts.last_seen,
            "confidence": facts.confidence,
            "accounts_linked": facts.accounts_linked,
            "requests": facts.requests,
            "outcome": outcome,
            "received_at": received_at,
        }
        for facts, indicator_ids, outcome in records
        for indicator_id in indicator_ids
    ]
    if rows:
        insert_rows(session, DetectionRecord.__table__, rows)  # type: ignore[arg-type]


def record_refusal(
    session: Session,
    *,
    principal_id: uuid.UUID | None,
    collection_id: uuid.UUID | None,
    detector: str | None,
    line: int,
    kind: str | None,
    field: str | None,
    reason: str,
) -> None:
    session.add(
        IngestRefusal(
            principal_id=principal_id,
            collection_id=collection_id,
            detector=detector,
            line=line,
            kind=kind,
            field=field,
            reason=reason[:2000],
        )
    )
