"""Per-key request rate limits and daily object quotas, counted in the database so any worker may serve any
request (docs/design.md#no-per-process-state).

Requests per minute use a sliding-window estimate over two fixed windows (this minute's count plus the
previous minute's, weighted by how much of it still overlaps the last 60 seconds): one row per key, one
upsert per request, no burst of twice the limit at a window boundary. Requests refused with 429 count too, so
a client that ignores ``Retry-After`` stays limited. Objects per day are a fixed UTC-day quota: checked before
the request (reads are clamped to what is left), charged after it with the number of objects served or
accepted (``charge_quota``, by the audit middleware, in a statement of its own and only for keys with a
quota); concurrent requests of one key may overshoot by at most one page each.
"""

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.auth.service import Caller
from indicator_exchange.errors import RateLimited
from indicator_exchange.settings import Settings
from indicator_exchange.store import counters
from indicator_exchange.store.engine import database_unavailable, session_scope

log = logging.getLogger(__name__)

REQUESTS_SCOPE = "requests-minute"
OBJECTS_SCOPE = "objects-day"
_MINUTE = 60
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Limits:
    """Effective limits of one key; 0 means unlimited."""

    requests_per_minute: int
    objects_per_day: int

    @property
    def any(self) -> bool:
        return bool(self.requests_per_minute or self.objects_per_day)


@dataclass(frozen=True, slots=True)
class Allowance:
    """The verdict on one request: ``refusal`` if it is over a limit (raise it once the count is committed),
    else ``objects_remaining`` today (``None``: no quota)."""

    objects_remaining: int | None = None
    refusal: RateLimited | None = None


def limits_for(caller: Caller, settings: Settings) -> Limits:
    """The principal's own limits; ``None`` falls back to the server defaults, 0 is unlimited."""
    rpm = caller.requests_per_minute
    per_day = caller.objects_per_day
    return Limits(
        requests_per_minute=settings.default_requests_per_minute if rpm is None else rpm,
        objects_per_day=settings.default_objects_per_day if per_day is None else per_day,
    )


def admit(session: Session, caller: Caller, limits: Limits, *, now: datetime) -> Allowance:
    """Count this request against the key's limits; a ``refusal`` (429, ``Retry-After``) when over.

    The refusal is returned, not raised, so the caller commits the count first: refused requests count too.
    """
    moment = now.timestamp()
    if limits.requests_per_minute:
        window_no, into = divmod(moment, _MINUTE)
        counted = counters.bump(session, key_id=caller.key_id, scope=REQUESTS_SCOPE, window_no=int(window_no))
        fraction = into / _MINUTE if counted.window_no == int(window_no) else 0.0
        estimate = counted.previous_count * (1 - fraction) + counted.count
        if estimate > limits.requests_per_minute:
            wait = _seconds_until_allowed(limits.requests_per_minute, counted, fraction)
            return Allowance(
                refusal=RateLimited(
                    f"this key may make {limits.requests_per_minute} requests per minute; retry in {wait} s",
                    retry_after=wait,
                )
            )
    if not limits.objects_per_day:
        return Allowance()
    day_no, into_day = divmod(moment, _DAY)
    used = counters.peek(session, key_id=caller.key_id, scope=OBJECTS_SCOPE, window_no=int(day_no))
    remaining = limits.objects_per_day - used
    if remaining <= 0:
        wait = max(1, math.ceil(_DAY - into_day))
        return Allowance(
            refusal=RateLimited(
                f"this key's quota of {limits.objects_per_day} objects per day (UTC) is used up; retry in {wait} s",
                retry_after=wait,
            )
        )
    return Allowance(objects_remaining=remaining)


def _seconds_until_allowed(limit: int, counted: counters.WindowCount, fraction: float) -> int:
    """How long until one more request fits under the sliding estimate, if no other request comes."""
    if counted.count + 1 <= limit and counted.previous_count > 0:
        needed = 1 - (limit - counted.count - 1) / counted.previous_count
        wait = (needed - fraction) * _MINUTE
    else:
        needed_next = max(0.0, 1 - (limit - 1) / counted.count) if counted.count else 0.0
        wait = (1 - fraction) * _MINUTE + needed_next * _MINUTE
    return max(1, math.ceil(wait))


def charge_objects(session: Session, *, key_id: str, count: int, now: datetime) -> None:
    """Add ``count`` objects served or accepted to the key's quota of the day."""
    if count > 0:
        day_no = int(now.timestamp() // _DAY)
        counters.bump(session, key_id=key_id, scope=OBJECTS_SCOPE, window_no=day_no, amount=count)


def charge_quota(sessions: sessionmaker[Session], *, key_id: str, count: int, now: datetime) -> bool:
    """``charge_objects`` in a short transaction of its own; ``False`` (logged) when it could not be written."""
    try:
        with session_scope(sessions) as session:
            charge_objects(session, key_id=key_id, count=count, now=now)
        return True
    except Exception as exc:
        if database_unavailable(exc):
            log.warning("database unavailable: %s objects were not charged to the quota of key %s", count, key_id)
        else:
            log.exception("could not charge %s objects to the quota of key %s", count, key_id)
        return False
