"""The score model: ``score(t) = base · (1 - (t/τ)^(1/δ))`` for ``t < τ``, else 0 (docs/lifecycle.md).

It is the polynomial decay MISP and OpenCTI use (docs/design.md#d10-lifecycle). ``τ`` (lifetime), ``δ``
(decay speed: above 1 the score falls fast at first, below 1 it holds and then drops) and the enforcement
``threshold`` are set per indicator kind; ``IX_LIFECYCLE_FILE`` overrides them.
"""

import json
import math
import typing
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

Kind = Literal[
    "residential-ip",
    "mobile-ip",
    "datacenter-ip",
    "asn",
    "prompt-sha256",
    "prompt-lsh",
    "email-domain",
    "login-regex",
    "cadence",
    "hashed-identifier",
]
KINDS: tuple[Kind, ...] = typing.get_args(Kind)

DEFAULT_CONFIDENCE = 50  # base₀ of an indicator without `confidence` (STIX 2.1 §3.2: "Med")


@dataclass(frozen=True, slots=True)
class Decay:
    """How one kind of indicator ages: lifetime ``tau``, decay speed ``delta`` and enforcement threshold."""

    tau: timedelta
    delta: float
    threshold: float


# The lifetimes are D8's (docs/design.md#d8-lifetimes); the reasoning per kind is in docs/lifecycle.md.
DEFAULTS: dict[Kind, Decay] = {
    "residential-ip": Decay(timedelta(hours=72), 2.0, 50.0),
    "mobile-ip": Decay(timedelta(hours=24), 2.0, 50.0),
    "datacenter-ip": Decay(timedelta(days=30), 1.0, 30.0),
    "asn": Decay(timedelta(days=90), 0.5, 30.0),
    "prompt-sha256": Decay(timedelta(days=180), 0.3, 20.0),
    "prompt-lsh": Decay(timedelta(days=90), 0.5, 30.0),
    "email-domain": Decay(timedelta(days=90), 0.5, 30.0),
    "login-regex": Decay(timedelta(days=30), 1.0, 30.0),
    "cadence": Decay(timedelta(days=90), 0.5, 30.0),
    "hashed-identifier": Decay(timedelta(days=365), 0.3, 20.0),
}


class LifecycleFileError(ValueError):
    """``IX_LIFECYCLE_FILE`` cannot be used; the message says which entry and why."""


def decay_score(base: float, elapsed: timedelta, decay: Decay) -> float:
    """The polynomial decay at ``elapsed`` since the anchor; ``base`` before the anchor (a future ``valid_from``)."""
    if elapsed <= timedelta(0):
        return base
    if elapsed >= decay.tau:
        return 0.0
    return base * (1.0 - float((elapsed / decay.tau) ** (1.0 / decay.delta)))


def feedback_base(base0: float, tp: int, fp: int) -> float:
    """MISP's sightings model with a = b = 1: ``base₀ · (TP + 1) / (TP + FP + 2) · 2``, clamped to 0-100.

    With no feedback it is ``base₀``; each distinct organisation counts once (the caller counts them).
    """
    return max(0.0, min(100.0, base0 * (tp + 1) / (tp + fp + 2) * 2))


@dataclass(frozen=True, slots=True)
class Score:
    """A live score and what it is made of (``GET /api/v1/indicators/{id}/lifecycle``)."""

    kind: Kind
    score: float
    base0: float
    base: float
    tp: int
    fp: int
    anchor: datetime
    elapsed_seconds: float
    decay: Decay

    @property
    def enforced(self) -> bool:
        return self.score >= self.decay.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "score": round(self.score, 2),
            "threshold": self.decay.threshold,
            "enforced": self.enforced,
            "base0": self.base0,
            "base": round(self.base, 2),
            "true_positives": self.tp,
            "false_positives": self.fp,
            "anchor": self.anchor.isoformat(),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "tau_seconds": self.decay.tau.total_seconds(),
            "delta": self.decay.delta,
        }


def compute(
    *,
    kind: Kind,
    confidence: int | None,
    valid_from: datetime,
    last_tp: datetime | None,
    valid_until: datetime | None = None,
    tp: int,
    fp: int,
    now: datetime,
    decays: dict[Kind, Decay],
) -> Score:
    """The score at ``now``: ``t`` runs from the latest of ``valid_from``, the last true positive and
    ``valid_until - τ`` (not after ``now``): the producer's last observation, as our detections publish
    ``valid_until = last_seen + τ``. A re-detected indicator stays fresh and reaches 0 at its ``valid_until``."""
    decay = decays[kind]
    base0 = float(DEFAULT_CONFIDENCE if confidence is None else confidence)
    base = feedback_base(base0, tp, fp)
    anchor = valid_from if last_tp is None else max(valid_from, last_tp)
    if valid_until is not None:
        anchor = max(anchor, min(valid_until - decay.tau, now))
    elapsed = now - anchor
    return Score(kind, decay_score(base, elapsed, decay), base0, base, tp, fp, anchor, elapsed.total_seconds(), decay)


def load_decays(path: str | None) -> dict[Kind, Decay]:
    """The defaults, overridden per kind by the JSON file at ``path``; ``LifecycleFileError`` on any bad entry.

    The file: ``{"kinds": {"residential-ip": {"tau": "48h", "delta": 1.5, "threshold": 40}, ...}}``; every key of
    a kind is optional. Durations are a number of seconds or a number with ``s``, ``m``, ``h`` or ``d``.
    """
    decays = dict(DEFAULTS)
    if not path:
        return decays
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LifecycleFileError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or set(data) - {"kinds"} or not isinstance(data.get("kinds", {}), dict):
        raise LifecycleFileError(f'{path}: must be {{"kinds": {{KIND: {{"tau", "delta", "threshold"}}}}}}')
    for kind, entry in data.get("kinds", {}).items():
        if kind not in DEFAULTS:
            raise LifecycleFileError(f"{path}: unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        if not isinstance(entry, dict) or set(entry) - {"tau", "delta", "threshold"}:
            raise LifecycleFileError(f"{path}: kinds.{kind} may set only tau, delta and threshold")
        decay = decays[kind]
        if "tau" in entry:
            decay = replace(decay, tau=_duration(path, kind, entry["tau"]))
        if "delta" in entry:
            decay = replace(decay, delta=_number(path, kind, "delta", entry["delta"], low=0.01, high=100.0))
        if "threshold" in entry:
            decay = replace(decay, threshold=_number(path, kind, "threshold", entry["threshold"], low=0.0, high=100.0))
        decays[kind] = decay
    return decays


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(path: str, kind: str, value: object) -> timedelta:
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value[-1:] in _UNITS:
        try:
            seconds = float(value[:-1]) * _UNITS[value[-1]]
        except ValueError:
            seconds = None
    if seconds is None or not math.isfinite(seconds) or not 60 <= seconds <= 10 * 365 * 86400:
        raise LifecycleFileError(
            f'{path}: kinds.{kind}.tau must be a duration between 1 minute and 10 years (e.g. 3600, "72h", "30d"), '
            f"not {value!r}"
        )
    return timedelta(seconds=seconds)


def _number(path: str, kind: str, name: str, value: object, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise LifecycleFileError(
            f"{path}: kinds.{kind}.{name} must be a number from {low:g} to {high:g}, not {value!r}"
        )
    return float(value)


@lru_cache(maxsize=8)
def cached_decays(path: str | None) -> dict[Kind, Decay]:
    """``load_decays`` once per process and file (the settings checked the file at start)."""
    return load_decays(path)
