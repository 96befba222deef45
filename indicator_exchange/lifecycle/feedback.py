"""Partner feedback in STIX (docs/lifecycle.md#feedback): sightings and opinions become per-organisation
verdicts; on our own indicators a true positive extends ``valid_until`` (a new version at most once a day) and a
false-positive quorum revokes them (a new, final version). Feedback on others' indicators is kept, never applied.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from indicator_exchange.auth.service import Caller
from indicator_exchange.lifecycle import model
from indicator_exchange.lifecycle.kinds import kind_of
from indicator_exchange.settings import Settings
from indicator_exchange.stix import versioning
from indicator_exchange.stix.ids import stix_seconds
from indicator_exchange.stix.objects import inspect_object
from indicator_exchange.store import audit as audit_store
from indicator_exchange.store import lifecycle as lifecycle_store
from indicator_exchange.store import writes as object_store
from indicator_exchange.store.lifecycle import StoredIndicator
from indicator_exchange.store.models import IndicatorFeedback, LifecycleEvent

FEEDBACK_TYPES = frozenset({"sighting", "opinion"})
OPINION_VERDICTS = {
    "strongly-agree": "tp",
    "agree": "tp",
    "neutral": "neutral",
    "disagree": "fp",
    "strongly-disagree": "fp",
}
EXTEND_EVERY = timedelta(days=1)


def targets(obj: Mapping[str, Any]) -> list[str]:
    """The indicators a feedback object is about."""
    if obj.get("type") == "sighting":
        ref = obj.get("sighting_of_ref")
        return [ref] if isinstance(ref, str) and ref.startswith("indicator--") else []
    if obj.get("type") == "opinion":
        refs = obj.get("object_refs")
        return [r for r in refs if isinstance(r, str) and r.startswith("indicator--")] if isinstance(refs, list) else []
    return []


def organisation_of(caller: Caller) -> str:
    """One name per organisation: two keys of one organisation vote once."""
    return caller.organisation or caller.identity_ref or f"principal:{caller.principal_id}"


def _readable(caller: Caller, copy: StoredIndicator) -> bool:
    # A grant to read or to write the indicator's collection (the matcher's sightings job writes on a grant
    # alone, for a requester who read the indicator), and a clearance for its marking.
    if not caller.sees(copy.collection_id):
        return False
    level = copy.default_tlp if copy.tlp is None else copy.tlp
    return level <= caller.clearance


def refusal(session: Session, caller: Caller, obj: Mapping[str, Any]) -> str | None:
    """Why ``caller`` may not post this feedback (an indicator it cannot read, or none), else None."""
    if obj.get("type") not in FEEDBACK_TYPES:
        return None
    for indicator_id in targets(obj):
        copies = lifecycle_store.latest_copies(session, indicator_id)
        if not any(_readable(caller, copy) for copy in copies):
            return f"{indicator_id} is not an indicator you may read; feedback not stored"
    return None


def screen(
    session: Session, caller: Caller, obj: Mapping[str, Any], accepted: list[dict[str, Any]]
) -> tuple[str, str | None]:
    """The TAXII write verdict of one object the write rules let through: feedback on an indicator the caller
    cannot read is refused; accepted feedback is collected for ``record`` after the write."""
    if obj.get("type") not in FEEDBACK_TYPES:
        return "store", None
    refused = refusal(session, caller, obj)
    if refused is not None:
        return "refuse", refused
    accepted.append(dict(obj))
    return "store", None


def _verdict(obj: Mapping[str, Any]) -> tuple[str, str | None] | None:
    if obj.get("type") == "sighting":
        return "tp", None
    opinion = obj.get("opinion")
    if isinstance(opinion, str) and opinion in OPINION_VERDICTS:
        return OPINION_VERDICTS[opinion], opinion
    return None


def _timestamp(value: object, fallback: datetime) -> datetime:
    if not isinstance(value, str):
        return fallback
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return fallback


def record(
    session: Session,
    *,
    collection_id: Any,
    objects: Iterable[Mapping[str, Any]],
    caller: Caller | None,
    settings: Settings,
    now: datetime | None = None,
) -> list[str]:
    """Store the verdicts of the feedback among ``objects`` and apply them to our indicators; the ids touched.

    ``caller`` is the posting principal (TAXII POST): its organisation is the voter. Without one (``sync``) the
    voter is the feedback's ``created_by_ref``, as the partner's server published it.
    """
    now = now or datetime.now(UTC)
    rows: list[IndicatorFeedback] = []
    for obj in objects:
        if obj.get("type") not in FEEDBACK_TYPES:
            continue
        verdict = _verdict(obj)
        if verdict is None:
            continue
        voter = organisation_of(caller) if caller is not None else str(obj.get("created_by_ref") or "unattributed")
        created = _timestamp(obj.get("created"), now)
        observed = _timestamp(obj.get("last_seen"), created) if obj.get("type") == "sighting" else created
        for indicator_id in targets(obj):
            rows.append(
                IndicatorFeedback(
                    indicator_id=indicator_id,
                    feedback_id=str(obj.get("id")),
                    feedback_version=str(obj.get("modified") or obj.get("created") or ""),
                    feedback_type=str(obj.get("type")),
                    organisation=voter[:256],
                    verdict=verdict[0],
                    opinion=verdict[1],
                    observed_at=min(observed, now),
                    collection_id=collection_id,
                    principal_id=caller.principal_id if caller is not None else None,
                    recorded_at=now,
                )
            )
    if not rows or not lifecycle_store.add_feedback(session, rows):
        return []
    touched = sorted({row.indicator_id for row in rows})
    for indicator_id in touched:
        apply(session, indicator_id, settings=settings, now=now)
    return touched


def record_synced(session: Session, collection_id: Any, objects: Sequence[object]) -> None:
    """Feedback among a page pulled from a partner's server (``sync``), with the process's settings."""
    from indicator_exchange.settings import get_settings

    found = [o for o in objects if isinstance(o, dict) and o.get("type") in FEEDBACK_TYPES]
    if found:
        record(session, collection_id=collection_id, objects=found, caller=None, settings=get_settings())


@dataclass(frozen=True, slots=True)
class Tally:
    """Each organisation's latest verdict on one indicator."""

    true_positive: tuple[str, ...]
    false_positive: tuple[str, ...]
    last_tp: datetime | None
    by_organisation: dict[str, dict[str, int]]


def tally(rows: Sequence[IndicatorFeedback]) -> Tally:
    latest: dict[str, str] = {}
    per_org: dict[str, dict[str, int]] = {}
    last_tp: datetime | None = None
    for row in rows:  # oldest first: the last verdict of an organisation is the one that counts
        counts = per_org.setdefault(row.organisation, {"tp": 0, "fp": 0, "neutral": 0})
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
        if row.verdict == "neutral":
            continue
        latest[row.organisation] = row.verdict
        if row.verdict == "tp":
            last_tp = row.observed_at if last_tp is None else max(last_tp, row.observed_at)
    return Tally(
        tuple(sorted(o for o, v in latest.items() if v == "tp")),
        tuple(sorted(o for o, v in latest.items() if v == "fp")),
        last_tp,
        per_org,
    )


def score_of(indicator: Mapping[str, Any], counted: Tally, *, settings: Settings, now: datetime) -> model.Score:
    """The live score of an indicator given its tally of feedback."""
    return score_with(indicator, counted, decays=decays_of(settings), now=now)


def score_with(
    indicator: Mapping[str, Any], counted: Tally | None, *, decays: dict[model.Kind, model.Decay], now: datetime
) -> model.Score:
    """``score_of`` with the decays given; ``counted`` None: no feedback."""
    confidence = indicator.get("confidence")
    return model.compute(
        kind=kind_of(indicator),
        confidence=confidence if isinstance(confidence, int) else None,
        valid_from=_timestamp(indicator.get("valid_from"), _timestamp(indicator.get("created"), now)),
        last_tp=counted.last_tp if counted else None,
        valid_until=_timestamp(indicator.get("valid_until"), now) if indicator.get("valid_until") else None,
        tp=len(counted.true_positive) if counted else 0,
        fp=len(counted.false_positive) if counted else 0,
        now=now,
        decays=decays,
    )


def decays_of(settings: Settings) -> dict[model.Kind, model.Decay]:
    return model.cached_decays(settings.lifecycle_file)


def apply(session: Session, indicator_id: str, *, settings: Settings, now: datetime) -> None:
    """Revoke our indicator on a false-positive quorum, or extend it on a true positive (once a day)."""
    counted = tally(lifecycle_store.feedback_of(session, indicator_id))
    for copy in lifecycle_store.latest_copies(session, indicator_id):
        if copy.created_by_ref != settings.identity_id or copy.revoked:
            continue  # not ours: the producer applies it when its sync reads the feedback
        score = score_of(copy.obj, counted, settings=settings, now=now)
        unvoted = model.compute(
            kind=score.kind,
            confidence=int(score.base0),
            valid_from=score.anchor,
            last_tp=None,
            tp=score.tp,
            fp=0,
            now=now,
            decays=decays_of(settings),
        )
        quorum = len(counted.false_positive) >= settings.fp_quorum
        # Votes that sink the score below threshold revoke too, but one organisation alone never does (unless
        # IX_FP_QUORUM is 1): with the default quorum of 2 this adds nothing; with a larger one, two suffice.
        several = len(counted.false_positive) >= min(2, settings.fp_quorum)
        sunk = several and not score.enforced and unvoted.enforced
        if quorum or sunk:
            why = (
                f"false-positive votes from {len(counted.false_positive)} organisations (IX_FP_QUORUM "
                f"{settings.fp_quorum})"
                if quorum
                else f"false-positive votes took the score to {score.score:.1f}, below the threshold "
                f"{score.decay.threshold:g}"
            )
            _write(session, copy, versioning.revoke(copy.obj, now), now)
            _event(session, copy, "revoked", why, counted.false_positive, now)
        elif counted.last_tp is not None and _may_extend(session, indicator_id, now):
            extended = _extended(copy.obj, counted.last_tp + score.decay.tau, now)
            if extended is not None:
                _write(session, copy, extended, now)
                _event(
                    session,
                    copy,
                    "extended",
                    f"true positive from {', '.join(counted.true_positive)}",
                    counted.true_positive,
                    now,
                    version=str(extended["modified"]),
                )


def _may_extend(session: Session, indicator_id: str, now: datetime) -> bool:
    last = lifecycle_store.events_of(session, indicator_id, "extended")
    return not last or now - last[-1].at >= EXTEND_EVERY


def _extended(obj: dict[str, Any], until_at: datetime, now: datetime) -> dict[str, Any] | None:
    """The next version with ``valid_until`` = the last true positive + τ; None when the indicator has no
    ``valid_until``, or that is not later than the published one, or already past (old feedback replayed)."""
    until = stix_seconds(until_at)
    if "valid_until" not in obj:
        return None  # valid until revoked: nothing to extend
    if until_at <= now or str(obj["valid_until"]) >= until:
        return None
    new = dict(obj)
    new["valid_until"] = until
    new["modified"] = versioning.later(str(obj["modified"]), now)
    return new


def _write(session: Session, copy: StoredIndicator, obj: dict[str, Any], now: datetime) -> None:
    version = object_store.version_of(obj, inspect_object(obj))
    object_store.lock_collection(session, copy.collection_id)
    now_us = int(now.timestamp()) * 1_000_000 + now.microsecond
    object_store.write_versions(session, copy.collection_id, [version], now_us=now_us, added_by=None)
    copy.obj.update(obj)


def _event(
    session: Session,
    copy: StoredIndicator,
    action: str,
    reason: str,
    organisations: Sequence[str],
    now: datetime,
    *,
    version: str | None = None,
) -> None:
    indicator_id = str(copy.obj["id"])
    lifecycle_store.add_event(
        session,
        LifecycleEvent(
            indicator_id=indicator_id,
            collection_id=copy.collection_id,
            action=action,
            reason=reason,
            organisations=list(organisations),
            version=version or str(copy.obj.get("modified")),
            at=now,
        ),
    )
    audit_store.add_event(
        session,
        at=now,
        principal_id=None,
        principal_name="lifecycle",
        key_id=None,
        client_addr=None,
        method="LIFECYCLE",
        path=f"/lifecycle/{indicator_id}",
        route=None,
        api_root=None,
        collection_id=copy.collection_id,
        object_id=indicator_id,
        status_code=200,
        outcome=action,
        detail=f"{action}: {reason}; organisations: {', '.join(organisations) or '-'}",
    )
