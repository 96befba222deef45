"""Failed authentications throttled per key id and per client address (``IX_AUTH_FAILURES_PER_MINUTE``).

Counted in the database like the rate limits (``auth.limits``; any worker may see any attempt), as a sliding
estimate over two one-minute windows. Once a key id or an address is over the limit, its next attempts are
refused with 429 and ``Retry-After`` before the key is looked up or its secret hashed, and without counting
(a refusal costs one read). A key served from the worker's cache with its right secret never reaches this
check, so an attacker hammering a key id does not lock out a poller that already authenticated; a client
that has to authenticate afresh while its key id is under attack waits like the attacker.
"""

import math
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from indicator_exchange.auth.keys import KEY_ID_PREFIX
from indicator_exchange.errors import RateLimited
from indicator_exchange.store import counters

KEY_SCOPE = "authfail-key"
ADDRESS_SCOPE = "authfail-addr"
_MINUTE = 60
_KEY_ID = re.compile(rf"^{re.escape(KEY_ID_PREFIX)}[0-9a-f]{{16}}$")
_COUNTER_KEY_LENGTH = 40  # rate_counter.key_id


@dataclass(frozen=True, slots=True)
class Attempt:
    """Who is trying: the key id claimed (``None`` when it cannot be a key id of ours) and the address."""

    key_id: str | None
    address: str | None

    @classmethod
    def of(cls, key_id: str | None, address: str | None) -> "Attempt":
        claimed = key_id if key_id is not None and _KEY_ID.match(key_id) else None
        return cls(key_id=claimed, address=address[:_COUNTER_KEY_LENGTH] if address else None)

    def counters(self) -> list[tuple[str, str]]:
        pairs = []
        if self.key_id is not None:
            pairs.append((self.key_id, KEY_SCOPE))
        if self.address is not None:
            pairs.append((self.address, ADDRESS_SCOPE))
        return pairs


def refusal(session: Session, attempt: Attempt, *, limit: int, now: datetime) -> RateLimited | None:
    """A 429 when the attempt's key id or address failed more than ``limit`` times in the last minute."""
    if limit <= 0:
        return None
    window_no, into = divmod(now.timestamp(), _MINUTE)
    fraction = into / _MINUTE
    wait = 0
    for counted in counters.read_many(session, attempt.counters()).values():
        if counted.window_no == int(window_no):
            estimate = counted.previous_count * (1 - fraction) + counted.count
            if estimate >= limit:
                wait = max(wait, _wait(limit, counted, fraction))
        elif counted.window_no == int(window_no) - 1 and counted.count * (1 - fraction) >= limit:
            # Last minute's failures still weigh on the estimate: wait until they have slid out enough.
            wait = max(wait, max(1, math.ceil((1 - limit / counted.count - fraction) * _MINUTE)))
    if wait <= 0:
        return None
    return RateLimited(f"too many failed authentications; retry in {wait} s", retry_after=wait)


def record_failure(session: Session, attempt: Attempt, *, now: datetime) -> None:
    """Count one failed authentication against the key id and the address."""
    window_no = int(now.timestamp() // _MINUTE)
    for key, scope in attempt.counters():
        counters.bump(session, key_id=key, scope=scope, window_no=window_no)


def _wait(limit: int, counted: counters.WindowCount, fraction: float) -> int:
    """Seconds until the sliding estimate drops below ``limit`` again, if no attempt comes meanwhile."""
    if counted.count < limit and counted.previous_count > 0:
        # previous * (1 - f) + count < limit  <=>  f > 1 - (limit - count) / previous
        needed = 1 - (limit - counted.count) / counted.previous_count
        seconds = (needed - fraction) * _MINUTE
    else:
        # This window alone is at the limit: wait for the next one, then for this one to slide out enough.
        needed_next = max(0.0, 1 - limit / counted.count) if counted.count else 0.0
        seconds = (1 - fraction) * _MINUTE + needed_next * _MINUTE
    return max(1, math.ceil(seconds))
