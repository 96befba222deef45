"""The lifecycle of one indicator as a reader may see it: score, components, feedback, lists, history."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from indicator_exchange.auth.service import Caller
from indicator_exchange.errors import NotFound
from indicator_exchange.lifecycle import feedback, screen
from indicator_exchange.settings import Settings
from indicator_exchange.store import lifecycle as lifecycle_store


def view(
    session: Session, *, indicator_id: str, caller: Caller | None, settings: Settings, now: datetime | None = None
) -> dict[str, Any]:
    """``GET /api/v1/indicators/{id}/lifecycle`` and ``lifecycle show``; ``NotFound`` when the caller may not read
    it (``caller`` None: the CLI, which sees everything)."""
    now = now or datetime.now(UTC)
    copies = [
        c
        for c in lifecycle_store.latest_copies(session, indicator_id)
        if c.obj.get("type") == "indicator" and (caller is None or feedback._readable(caller, c))
    ]
    if not copies:
        raise NotFound(f"there is no indicator {indicator_id} you may read")
    ours = [c for c in copies if c.created_by_ref == settings.identity_id]
    copy = (ours or copies)[0]
    rows = lifecycle_store.feedback_of(session, indicator_id)
    counted = feedback.tally(rows)
    score = feedback.score_of(copy.obj, counted, settings=settings, now=now)
    lists = screen.lists_of(settings)
    verdict = screen.indicator_verdict(copy.obj, lists) if lists is not None else None
    hits = [] if verdict is None else [*verdict.refused, *verdict.flagged]
    revoked = bool(copy.obj.get("revoked"))
    enforced = score.enforced and not revoked and not hits
    return {
        "id": indicator_id,
        "collection_id": str(copy.collection_id),
        "created_by_ref": copy.created_by_ref,
        "ours": copy.created_by_ref == settings.identity_id,
        "at": now.isoformat(),
        "score": score.as_dict(),
        "enforced": enforced,
        "why_not_enforced": _why_not(score.enforced, revoked, hits, score.score, score.decay.threshold),
        "valid_from": copy.obj.get("valid_from"),
        "valid_until": copy.obj.get("valid_until"),
        "revoked": revoked,
        "organisations": counted.by_organisation,
        "true_positive_organisations": list(counted.true_positive),
        "false_positive_organisations": list(counted.false_positive),
        "warninglists": [{"list": h.list_name, "policy": h.policy, "value": h.value} for h in hits],
        "versions": [
            {"modified": modified, "revoked": was_revoked}
            for modified, was_revoked in lifecycle_store.versions_of(session, copy.collection_id, indicator_id)
        ],
        "feedback": [
            {
                "id": row.feedback_id,
                "type": row.feedback_type,
                "organisation": row.organisation,
                "verdict": row.verdict,
                "opinion": row.opinion,
                "observed_at": row.observed_at.isoformat(),
            }
            for row in rows
        ],
        "events": [
            {"action": e.action, "reason": e.reason, "organisations": e.organisations, "at": e.at.isoformat()}
            for e in lifecycle_store.events_of(session, indicator_id)
        ],
    }


def _why_not(above: bool, revoked: bool, hits: list[Any], score: float, threshold: float) -> str | None:
    if revoked:
        return "revoked"
    if hits:
        return "on a warninglist: " + ", ".join(sorted({h.list_name for h in hits}))
    if not above:
        return f"score {score:.1f} below the threshold {threshold:g}"
    return None
