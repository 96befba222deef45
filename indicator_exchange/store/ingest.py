"""Persistence for detector ingestion: latest stored versions, provenance records and refusals."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select, true
from sqlalchemy.orm import Session

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
                ObjectVersion.stix_id.in_(ids[start : start + 500]),
            )
        )
        for stix_id, raw in rows:
            found[stix_id] = orjson.loads(raw)
    return found


def record_detection(
    session: Session,
    *,
    collection_id: uuid.UUID,
    principal_id: uuid.UUID | None,
    record: DetectionFacts,
    indicator_ids: Sequence[str],
    outcome: str,
) -> None:
    session.add_all(
        DetectionRecord(
            collection_id=collection_id,
            indicator_id=indicator_id,
            principal_id=principal_id,
            detector=record.detector,
            kind=record.kind,
            cluster=record.cluster,
            first_seen=record.first_seen,
            last_seen=record.last_seen,
            confidence=record.confidence,
            accounts_linked=record.accounts_linked,
            requests=record.requests,
            outcome=outcome,
        )
        for indicator_id in indicator_ids
    )


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
