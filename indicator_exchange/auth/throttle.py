"""Failed authentications throttled per key id and per client address (``IX_AUTH_FAILURES_PER_MINUTE``).

Counted in the database like the rate limits (``auth.limits``; any worker may see any attempt), as a sliding
estimate over two one-minute windows. Refusals are 429 with ``Retry-After``, answered before the key is looked
up or its secret hashed, and not counted (a refusal costs one read):

- a key id over the limit is refused from every address: a client that has to authenticate afresh while its
  own key id is under attack waits like the attacker;
- an address over the limit is not locked out: a partner's fleet often shares one NAT address, and one
  misconfigured machine (or an attacker on the same cloud egress) must not lock out its honest neighbours. Its
  attempts naming a key id (``ixk_`` and 16 hex digits) that is under its own limit are still checked, so a
  right secret gets in; only attempts whose key id cannot be one of ours are refused;
- an address over ``ADDRESS_CEILING_FACTOR`` times the limit is refused whatever it names.

Work stays bounded: a secret is hashed only for a key that exists, and each failure counts against its key
id, so each key costs at most about ``limit`` hashes a minute whatever the number of addresses; an unknown
key id costs a lookup and a counter row, at most about ``limit * ADDRESS_CEILING_FACTOR`` a minute per
address. A key served from the worker's cache with its right secret never reaches this check.
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
# An address may fail this many times the limit while its attempts name key ids under their own limit.
ADDRESS_CEILING_FACTOR = 10
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
    """A 429 when the attempt's key id failed more than ``limit`` times in the last minute, or its address did
    (and the attempt claims no key id), or its address failed past ``limit * ADDRESS_CEILING_FACTOR``."""
    if limit <= 0:
        return None
    window_no, into = divmod(now.timestamp(), _MINUTE)
    fraction = into / _MINUTE
    found = counters.read_many(session, attempt.counters())
    wait = 0
    if attempt.key_id is not None and (counted := found.get((attempt.key_id, KEY_SCOPE))) is not None:
        wait = _wait_over(limit, counted, int(window_no), fraction)
    if attempt.address is not None and (counted := found.get((attempt.address, ADDRESS_SCOPE))) is not None:
        address_limit = limit if attempt.key_id is None else limit * ADDRESS_CEILING_FACTOR
        wait = max(wait, _wait_over(address_limit, counted, int(window_no), fraction))
    if wait <= 0:
        return None
    return RateLimited(f"too many failed authentications; retry in {wait} s", retry_after=wait)


def _wait_over(limit: int, counted: counters.WindowCount, window_no: int, fraction: float) -> int:
    """Seconds to wait when the counter's sliding estimate is at ``limit`` or over it, else 0."""
    if counted.window_no == window_no:
        if counted.previous_count * (1 - fraction) + counted.count >= limit:
            return _wait(limit, counted, fraction)
    elif counted.window_no == window_no - 1 and counted.count * (1 - fraction) >= limit:
        # Last minute's failures still weigh on the estimate: wait until they have slid out enough.
        return max(1, math.ceil((1 - limit / counted.count - fraction) * _MINUTE))
    return 0


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
