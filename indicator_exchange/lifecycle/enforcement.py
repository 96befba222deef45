"""Which indicators the matcher enforces: not on a warninglist (either policy) and scoring at or above the
threshold of their kind (docs/lifecycle.md). The matcher asks once per compiled set."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from indicator_exchange.lifecycle import feedback, screen
from indicator_exchange.settings import Settings
from indicator_exchange.store import lifecycle as lifecycle_store


@dataclass(slots=True)
class Assessment:
    scores: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # indicator id -> why it is not enforced


def assess(
    session: Session, indicators: Mapping[str, Mapping[str, Any]], *, settings: Settings, now: datetime
) -> Assessment:
    """Score every indicator and say which are not enforced, and why."""
    result = Assessment()
    rows = lifecycle_store.feedback_for(session, list(indicators))
    lists = screen.lists_of(settings)
    for indicator_id, obj in indicators.items():
        score = feedback.score_of(obj, feedback.tally(rows.get(indicator_id, [])), settings=settings, now=now)
        result.scores[indicator_id] = round(score.score, 2)
        verdict = screen.indicator_verdict(obj, lists) if lists is not None else None
        if verdict is not None and not verdict.clean:
            names = sorted({hit.list_name for hit in (*verdict.refused, *verdict.flagged)})
            result.skipped[indicator_id] = "on a warninglist: " + "; ".join(names)
        elif not score.enforced:
            result.skipped[indicator_id] = (
                f"score {score.score:.1f} below the {score.kind} threshold {score.decay.threshold:g}"
            )
    return result
