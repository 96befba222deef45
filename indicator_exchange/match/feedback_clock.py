"""How far the live index has read the partner-feedback rows, by row id (docs/lifecycle.md#feedback)."""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

HOLE_WAIT = 30.0  # seconds a feedback row id skipped by a read may still commit (an open transaction took it)
MAX_HOLES = 10_000  # ids skipped at once beyond which a jump of the sequence is not waited for


@dataclass(slots=True)
class FeedbackClock:
    """How far the index has read the feedback rows, by row id.

    Ids are handed out before commit, so a read may see id n+1 while n is still in an open transaction: an id
    skipped is a *hole*, read again on every poll until it appears or ``HOLE_WAIT`` passes (a rolled-back
    insert leaves a hole for ever). ``settled``: every id at or below it is read or given up on.
    """

    settled: int = 0
    seen: set[int] = field(default_factory=set)  # ids above ``settled`` already read
    holes: dict[int, float] = field(default_factory=dict)  # id -> when first skipped (monotonic seconds)

    def advance(self, rows: Iterable[tuple[int, str]], now: float) -> set[str]:
        """Take the rows read above ``settled``; the indicators of those not read before."""
        touched: set[str] = set()
        for row_id, indicator_id in rows:
            if row_id <= self.settled or row_id in self.seen:
                continue
            self.seen.add(row_id)
            self.holes.pop(row_id, None)
            touched.add(indicator_id)
        top = max(self.seen, default=self.settled)
        if top - self.settled - len(self.seen) > MAX_HOLES:
            self.holes.clear()  # the sequence jumped (restored, or reset by hand): no transaction is that wide
            self.seen.clear()
            self.settled = top
            return touched
        for missing in range(self.settled + 1, top + 1):
            if missing not in self.seen:
                self.holes.setdefault(missing, now)
        for missing in [k for k, since in self.holes.items() if now - since > HOLE_WAIT]:
            del self.holes[missing]
        self.settled = min(self.holes) - 1 if self.holes else top
        self.seen = {k for k in self.seen if k > self.settled}
        return touched

    @classmethod
    def starting(cls, rows: Iterable[tuple[int, datetime]], now: datetime) -> "FeedbackClock":
        """The clock after a full read of ``(id, recorded_at)`` rows: rows recorded within ``HOLE_WAIT`` of
        ``now`` leave the ids between them open as holes."""
        clock = cls()
        old, recent = 0, []
        for row_id, recorded_at in rows:
            if (now - recorded_at).total_seconds() > HOLE_WAIT:
                old = max(old, row_id)
            else:
                recent.append((row_id, ""))
        clock.settled = old
        clock.advance(recent, time.monotonic())
        return clock
