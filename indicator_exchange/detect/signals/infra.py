"""Infrastructure synchronisation: which accounts act from which address, /24 (/48) range or ASN, in which
time buckets (a bipartite account <-> infrastructure graph, one bit per bucket).

SynchroTrap's point is that fraud accounts are loosely *synchronised*: they share infrastructure at the same
times, again and again. Sharing alone is what carrier-grade NAT, corporate egress and universities look like,
so ``sync_links`` only links accounts that share a key *and* a prompt family, on a key where that family is
``sync_min_lift`` times more common than in the whole population (an honest NAT carries a family at about its
population share) or holds ``sync_min_purity`` of the key's accounts, and in at least ``sync_min_buckets``
buckets in which two or more of the family's accounts were active on it.
"""

from collections import defaultdict
from dataclasses import dataclass

from indicator_exchange.detect.config import DetectConfig

_MAX_KEYS_PER_ACCOUNT = 512
"""Keys remembered per account: a proxy-rotating account beyond it is still linked through the first 512."""


@dataclass(frozen=True, slots=True)
class SyncLink:
    key: str
    accounts: list[str]
    buckets: int
    lift: float


class InfraIndex:
    def __init__(self, config: DetectConfig) -> None:
        self._limit = config.key_max_accounts
        self.by_key: dict[str, dict[str, int]] = {}
        self.overflow: dict[str, int] = defaultdict(int)
        self.by_account: dict[str, set[str]] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        """Address key -> the range and ASN keys it was seen under (to check a range before publishing it)."""

    def add(self, account: str, keys: list[str], bucket: int) -> None:
        bit = 1 << bucket
        mine = self.by_account.get(account)
        if mine is None:
            mine = self.by_account[account] = set()
        by_key = self.by_key
        for key in keys:
            accounts = by_key.get(key)
            if accounts is None:
                accounts = by_key[key] = {}
                if key.startswith("ip:"):
                    self.parents[key] = tuple(k for k in keys if k != key)
            mask = accounts.get(account)
            if mask is not None:
                accounts[account] = mask | bit
            elif len(accounts) < self._limit:
                accounts[account] = bit
                if len(mine) < _MAX_KEYS_PER_ACCOUNT:
                    mine.add(key)
            else:
                self.overflow[key] += 1

    def accounts_on(self, key: str) -> int:
        """Distinct accounts seen on a key (an over-count past ``key_max_accounts``: conservative)."""
        return len(self.by_key.get(key, ())) + self.overflow.get(key, 0)

    def sync_links(self, members: list[str], *, population: int, config: DetectConfig) -> list[SyncLink]:
        """The keys on which ``members`` (accounts of one family) are synchronised, with who is linked."""
        if population <= 0 or len(members) < 2:
            return []
        share = len(members) / population
        on_key: dict[str, list[str]] = defaultdict(list)
        for account in members:
            for key in self.by_account.get(account, ()):
                on_key[key].append(account)
        links = []
        for key, accounts in on_key.items():
            if len(accounts) < 2:
                continue
            purity = len(accounts) / self.accounts_on(key)
            lift = purity / share
            # Lift alone cannot pass a family that is a large part of the population (lift <= 1 / share): a key
            # the family holds most of is as telling.
            if lift < config.sync_min_lift and purity < config.sync_min_purity:
                continue
            masks = self.by_key[key]
            seen = shared = 0
            for account in accounts:
                mask = masks[account]
                shared |= seen & mask
                seen |= mask
            buckets = shared.bit_count()
            if buckets < config.sync_min_buckets:
                continue
            # The key is synchronised: every focused family account on it is linked, also one seen there in a
            # single bucket (thin campaigns spread a few requests per account over many hours).
            linked = accounts
            links.append(SyncLink(key=key, accounts=linked, buckets=buckets, lift=lift))
        return links
