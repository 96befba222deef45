"""Detector ingestion: validated detections become STIX 2.1 objects, deduplicated and versioned, in one
transaction per request.

Per line the outcome is ``created``, ``versioned``, ``unchanged``, ``revoked`` or ``rejected``. Work is
batched: every line is converted first, the stored latest versions of all touched ids are read in one
query, merges run in memory (so two detections of the same thing in one request merge with each other),
and everything is written with one locked ``write_versions`` call.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from pydantic import ValidationError
from sqlalchemy.orm import Session

from indicator_exchange.auth.service import Caller, require_kind, require_write
from indicator_exchange.errors import BadRequest, NotPermitted
from indicator_exchange.ingest import convert
from indicator_exchange.ingest.parsing import InputLine
from indicator_exchange.ingest.screening import screen_plan
from indicator_exchange.settings import Settings
from indicator_exchange.stix.objects import inspect_object
from indicator_exchange.stix.versioning import kept_on_merge, merge, revoke
from indicator_exchange.store import catalog
from indicator_exchange.store import ingest as ingest_store
from indicator_exchange.store import objects as store
from indicator_exchange.store.models import Collection


@dataclass(slots=True)
class LineResult:
    line: int
    outcome: str
    stix_ids: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    # Where what is published differs from what the line asked for (a raised TLP, a kept proxy kind), and why.
    adjusted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "line": self.line,
            "outcome": self.outcome,
            "stix_ids": self.stix_ids,
            "adjusted": self.adjusted,
        }
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(slots=True)
class IngestResult:
    collection_id: uuid.UUID
    results: list[LineResult]

    def counts(self) -> dict[str, int]:
        counts = {"created": 0, "versioned": 0, "unchanged": 0, "revoked": 0, "rejected": 0}
        for result in self.results:
            counts[result.outcome] += 1
        return counts

    def as_dict(self) -> dict[str, object]:
        return {
            "collection_id": str(self.collection_id),
            "summary": self.counts(),
            "results": [r.as_dict() for r in self.results],
        }


def target_collection(session: Session, caller: Caller, requested: str | None) -> Collection:
    """The collection a detector writes to: the one it names (if granted) or its only write grant."""
    require_kind(caller, "detector", "admin")
    if requested:
        collection = catalog.resolve_collection(session, requested)
        require_write(caller, collection)
        return collection
    writable = [cid for cid, access in caller.grants.items() if access.can_write]
    if len(writable) != 1:
        raise BadRequest(
            "name the target collection (?collection=ID): "
            + ("you have no write grant" if not writable else "you may write to several collections")
        )
    found = catalog.get_collection_by_id(session, writable[0])
    if found is None:  # pragma: no cover - a grant's collection always exists (foreign key)
        raise NotPermitted("your write grant points to a missing collection")
    return found


def now_us_of(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


MAX_GENERATIONS = 8


def ingest(
    session: Session,
    *,
    caller: Caller,
    collection: Collection,
    lines: Sequence[InputLine],
    settings: Settings,
    now: datetime | None = None,
) -> IngestResult:
    """Convert, deduplicate, version and store a request's detections; one result per input line."""
    now = now or datetime.now(UTC)
    results: list[LineResult] = []
    planned: list[tuple[LineResult, convert.Planned]] = []
    for item in lines:
        if item.error is not None:
            results.append(_reject(session, caller, collection, item.line, None, "body", item.error))
            continue
        try:
            detection = convert.validate(item.value)
            plan = convert.plan(detection, settings=settings, now=now)
            screen_plan(plan, settings)  # warninglists: refused here, or flagged (docs/lifecycle.md)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            field_name = ".".join(str(p) for p in first.get("loc", ())) or "detection"
            results.append(
                _reject(
                    session,
                    caller,
                    collection,
                    item.line,
                    convert.kind_of(item.value),
                    field_name,
                    str(first.get("msg", "invalid")),
                )
            )
            continue
        except convert.Refused as exc:
            results.append(
                _reject(session, caller, collection, item.line, convert.kind_of(item.value), exc.field, exc.reason)
            )
            continue
        result = LineResult(line=item.line, outcome="unchanged")
        results.append(result)
        planned.append((result, plan))

    latest = _latest_with_generations(session, collection, planned, settings, now)
    pending: dict[tuple[str, str], dict[str, object]] = {}
    fresh: dict[str, tuple[tuple[str, str], str]] = {}
    for result, plan in planned:
        result.outcome = _apply(plan, latest, pending, now, result, fresh)
        for obj in plan.conversion.context:
            key = (str(obj["id"]), str(obj.get("modified") or obj.get("created") or ""))
            if _newer_than_stored(obj, latest.get(str(obj["id"]))):
                pending.setdefault(key, obj)
    if pending:
        _write(session, collection, caller, list(pending.values()), now)
    ingest_store.record_detections(
        session,
        collection_id=collection.id,
        principal_id=caller.principal_id,
        records=[
            (plan.facts, [str(i["id"]) for i in plan.conversion.indicators], result.outcome) for result, plan in planned
        ],
    )
    return IngestResult(collection_id=collection.id, results=results)


# Context whose versions are fixed in the code: a newer one (the TLP:CLEAR re-marking) replaces the stored one.
_FIXED_CONTEXT = frozenset({"identity", "extension-definition"})


def _newer_than_stored(obj: dict[str, object], stored: dict[str, object] | None) -> bool:
    """Context objects are written when none is stored, and the identity and extension definitions also when
    the stored one is an older version. Relationships carry the request's time and are written once."""
    if stored is None:
        return True
    if obj.get("type") not in _FIXED_CONTEXT:
        return False
    ours = str(obj.get("modified") or obj.get("created") or "")
    theirs = str(stored.get("modified") or stored.get("created") or "")
    return ours > theirs  # STIX timestamps of one producer, all in the same millisecond form


def _latest_with_generations(
    session: Session,
    collection: Collection,
    planned: list[tuple[LineResult, convert.Planned]],
    settings: Settings,
    now: datetime,
) -> dict[str, dict[str, object]]:
    """Latest stored versions of everything the lines touch. A new detection of something revoked earlier
    becomes the next *generation* (a fresh id): a revoked STIX object can never be versioned again."""
    context_ids = {str(o["id"]) for _, plan in planned for o in plan.conversion.context}
    wanted = {str(o["id"]) for _, plan in planned for o in plan.conversion.versioned} | context_ids
    latest = ingest_store.latest_objects(session, collection.id, sorted(wanted))
    for _ in range(MAX_GENERATIONS):
        bumped = False
        for index, (result, plan) in enumerate(planned):
            if plan.detection.false_positive:
                continue
            if any(latest.get(str(i["id"]), {}).get("revoked") is True for i in plan.conversion.indicators):
                bumped_plan = convert.plan(plan.detection, settings=settings, now=now, generation=plan.generation + 1)
                screen_plan(bumped_plan, settings)  # already passed the lists once: only relabels
                planned[index] = (result, bumped_plan)
                bumped = True
        if not bumped:
            return latest
        wanted = {str(o["id"]) for _, plan in planned for o in plan.conversion.versioned} - set(latest)
        latest.update(ingest_store.latest_objects(session, collection.id, sorted(wanted)))
    return latest


def _apply(
    plan: convert.Planned,
    latest: dict[str, dict[str, object]],
    pending: dict[tuple[str, str], dict[str, object]],
    now: datetime,
    result: LineResult,
    fresh: dict[str, tuple[tuple[str, str], str]],
) -> str:
    """Merge the line's indicators and campaign into what is stored or already pending in this request.

    ``fresh`` holds, per id, the version this request already makes and its outcome: a later line of the
    same request folds into that version instead of adding another (a batch of 1,000 detections of one
    cluster makes one campaign version, not 1,000).
    """
    outcomes: list[str] = []
    notes = [] if plan.detection.false_positive else list(plan.conversion.adjusted)
    for new in plan.conversion.versioned:
        stix_id = str(new["id"])
        is_indicator = new["type"] == "indicator"
        if is_indicator:
            result.stix_ids.append(stix_id)
        current = latest.get(stix_id)
        updated: dict[str, object] | None
        if plan.detection.false_positive and is_indicator:
            if current is None or current.get("revoked") is True:
                outcomes.append("unchanged")
                continue
            updated, outcome = revoke(current, now), "revoked"
        elif plan.detection.false_positive:
            continue  # a false positive does not touch the campaign
        elif current is None:
            updated, outcome = cast("dict[str, object]", new), "created"  # stored as generated
        else:
            updated = merge(current, new, now)
            outcome = "unchanged" if updated is None else "versioned"
            notes += kept_on_merge(current, new)
        if updated is not None:
            folded = fresh.get(stix_id)
            if folded is not None and current is not None:
                del pending[folded[0]]
                updated["modified"] = current["modified"]
                outcome = "revoked" if outcome == "revoked" else folded[1]
            key = (stix_id, str(updated["modified"]))
            latest[stix_id] = updated
            pending[key] = updated
            fresh[stix_id] = (key, outcome)
        if is_indicator:
            outcomes.append(outcome)
    result.adjusted = list(dict.fromkeys(notes))  # two indicators of one prompt say the same once
    for preferred in ("revoked", "created", "versioned"):
        if preferred in outcomes:
            return preferred
    return "unchanged"


def _write(
    session: Session, collection: Collection, caller: Caller, objects: list[dict[str, object]], now: datetime
) -> None:
    versions = []
    for obj in objects:
        meta = inspect_object(obj)
        versions.append(store.version_of(obj, meta))
    store.lock_collection(session, collection.id)
    store.write_versions(session, collection.id, versions, now_us=now_us_of(now), added_by=caller.principal_id)


def _reject(
    session: Session,
    caller: Caller,
    collection: Collection,
    line: int,
    kind: str | None,
    field_name: str,
    reason: str,
) -> LineResult:
    ingest_store.record_refusal(
        session,
        principal_id=caller.principal_id,
        collection_id=collection.id,
        detector=None,
        line=line,
        kind=kind,
        field=field_name,
        reason=reason,
    )
    return LineResult(line=line, outcome="rejected", error={"field": field_name, "message": reason})
