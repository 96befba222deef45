"""Which indicators the matcher enforces: not on a warninglist (either policy) and scoring at or above the
threshold of their kind (docs/lifecycle.md). The matcher asks once per compiled set."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from indicator_exchange.lifecycle import feedback, model, screen
from indicator_exchange.lifecycle.warninglists import cached
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


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """The lifecycle's part of "is this indicator enforced?" for the live match index (``match.index.enforced``):
    its warninglist hits, and its score with the feedback the index has read (``counted``; None: none). The index
    follows feedback rows by id (``match.feedback_clock.FeedbackClock``), so a vote that sinks a score or a sighting
    that resets ``t`` applies without a new version. Hashable: part of the index's configuration."""

    lifecycle_file: str | None
    warninglists: bool
    warninglist_file: str | None
    max_prefix_v4: int
    max_prefix_v6: int

    @classmethod
    def of(cls, settings: Settings) -> "LifecyclePolicy":
        return cls(
            settings.lifecycle_file,
            settings.warninglists,
            settings.warninglist_file,
            settings.warninglist_max_prefix_v4,
            settings.warninglist_max_prefix_v6,
        )

    def score(self, indicator: Mapping[str, Any], now: datetime, counted: feedback.Tally | None = None) -> model.Score:
        return feedback.score_with(indicator, counted, decays=model.cached_decays(self.lifecycle_file), now=now)

    def reason(self, indicator: Mapping[str, Any], now_us: int, counted: feedback.Tally | None = None) -> str | None:
        """Why the lifecycle does not enforce it at ``now_us``, or None."""
        listed = _listed(
            str(indicator.get("pattern") or ""),
            screen.FLAG_LABEL in (indicator.get("labels") or ()),
            self if self.warninglists else None,
        )
        if listed is not None:
            return listed
        score = self.score(indicator, _moment(now_us), counted)
        if not score.enforced:
            return f"score {score.score:.1f} below the {score.kind} threshold {score.decay.threshold:g}"
        return None

    def crossing(self, indicator: Mapping[str, Any], now_us: int, counted: feedback.Tally | None = None) -> int | None:
        """When (µs) the score will fall below the threshold, if later than ``now_us``."""
        score = self.score(indicator, _moment(now_us), counted)
        decay = score.decay
        if score.base <= decay.threshold or not score.enforced:
            return None
        elapsed = decay.tau * (1 - decay.threshold / score.base) ** decay.delta
        at = int((score.anchor + elapsed).timestamp() * 1_000_000)
        return at if at > now_us else None


def _moment(now_us: int) -> datetime:
    return datetime.fromtimestamp(now_us / 1_000_000, tz=UTC)


@lru_cache(maxsize=65_536)
def _listed(pattern: str, flagged: bool, policy: LifecyclePolicy | None) -> str | None:
    if policy is None:
        return None
    lists = cached(policy.warninglist_file, policy.max_prefix_v4, policy.max_prefix_v6)
    verdict = screen.indicator_verdict({"pattern": pattern, "labels": [screen.FLAG_LABEL] if flagged else []}, lists)
    if verdict.clean:
        return None
    return "on a warninglist: " + "; ".join(sorted({hit.list_name for hit in (*verdict.refused, *verdict.flagged)}))
