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

import numpy as np
import numpy.typing as npt

from indicator_exchange.detect.config import DetectConfig

_MAX_KEYS_PER_ACCOUNT = 512
"""Keys remembered per account: a proxy-rotating account beyond it is still linked through the first 512."""


_KEY_BITS = 28
_KEY_MASK = (1 << _KEY_BITS) - 1


@dataclass(frozen=True, slots=True)
class SyncLink:
    key: str
    accounts: list[str]
    buckets: int
    lift: float


class InfraIndex:
    """Who used which key in which bucket, filed as packed (account, key, bucket) codes a batch at a time.

    Accounts and keys are numbered as they arrive; a batch appends its codes to a numpy buffer, compacted
    (sorted, duplicates dropped) as it grows. The graph itself (``by_key``, ``by_account``) is built once, at
    close, from the distinct codes: per event there is no dictionary to update.
    """

    def __init__(self, config: DetectConfig) -> None:
        self._limit = config.key_max_accounts
        self._bits = max(1, (config.window_seconds // config.bucket_seconds - 1).bit_length())
        self.account_ids: dict[str, int] = {}
        self.account_names: list[str] = []
        self.key_ids: dict[str, int] = {}
        self.key_names: list[str] = []
        self._parents: dict[int, tuple[int, ...]] = {}
        self._codes: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._pending: list[npt.NDArray[np.int64]] = []
        self._pending_size = 0
        self._graph: tuple[dict[str, dict[str, int]], dict[str, int], dict[str, set[str]], dict[str, tuple[str, ...]]]
        self._graph = ({}, {}, {}, {})
        self._dirty = False

    def account(self, name: str) -> int:
        found = self.account_ids.get(name)
        if found is None:
            found = self.account_ids[name] = len(self.account_names)
            self.account_names.append(name)
        return found

    def keys(self, names: list[str]) -> tuple[int, ...]:
        """Numbers of ``names`` (an address, its range, its ASN), noting an address's parents on first sight."""
        ids = []
        new_address = -1
        for name in names:
            found = self.key_ids.get(name)
            if found is None:
                found = self.key_ids[name] = len(self.key_names)
                self.key_names.append(name)
                if name.startswith("ip:"):
                    new_address = found
            ids.append(found)
        if new_address >= 0:
            self._parents[new_address] = tuple(i for i in ids if i != new_address)
        return tuple(ids)

    def add(self, account: str, keys: list[str], bucket: int) -> None:
        """One event (the engine files whole batches through ``add_codes``)."""
        aid = self.account(account)
        kids = np.array(self.keys(keys), dtype=np.int64)
        self.add_codes(np.array([aid], dtype=np.int64), kids.reshape(1, -1), np.array([bucket], dtype=np.int64))

    def add_codes(
        self, accounts: npt.NDArray[np.int64], keys: npt.NDArray[np.int64], buckets: npt.NDArray[np.int64]
    ) -> None:
        """File events: ``accounts[i]`` used ``keys[i]`` (numbers, -1 = none) in ``buckets[i]``."""
        self._dirty = True
        if not keys.size:
            return
        if len(self.account_names) >= 1 << (63 - _KEY_BITS - self._bits) or len(self.key_names) > _KEY_MASK:
            raise RuntimeError("too many accounts or keys in one window: shard the log (--shard) or shorten --window")
        codes = (((accounts[:, None] << _KEY_BITS) | keys) << self._bits) | buckets[:, None]
        codes = codes[keys >= 0]
        self._pending.append(codes)
        self._pending_size += len(codes)
        if self._pending_size > max(1 << 20, len(self._codes)):
            self._compact()

    def _compact(self) -> None:
        if self._pending:
            # Only the new codes are sorted; the held ones are already, and a stable sort of two sorted runs is a
            # merge (timsort), not another sort of everything.
            fresh = np.concatenate(self._pending)
            fresh.sort()
            merged = np.concatenate([self._codes, fresh])
            merged.sort(kind="stable")
            keep = np.empty(len(merged), dtype=bool)
            keep[:1] = True
            np.not_equal(merged[1:], merged[:-1], out=keep[1:])
            self._codes = merged[keep]
            self._pending, self._pending_size = [], 0

    @property
    def size(self) -> int:
        """Codes held (the bench reports it)."""
        return len(self._codes) + self._pending_size

    def _build(self) -> None:
        """The bipartite graph from the distinct codes: key -> account -> bucket mask, and its inverse."""
        self._compact()
        self._dirty = False
        codes = self._codes
        buckets = codes & ((1 << self._bits) - 1)
        pairs = codes >> self._bits
        starts = np.flatnonzero(np.r_[True, pairs[1:] != pairs[:-1]]) if len(pairs) else np.zeros(0, dtype=np.int64)
        unique_pairs = pairs[starts]
        if self._bits < 6:
            masks: list[int] = np.bitwise_or.reduceat(np.left_shift(1, buckets), starts).tolist() if len(starts) else []
        else:
            bucket_list, ends = buckets.tolist(), [*starts.tolist()[1:], len(buckets)]
            masks = []
            for begin, end in zip(starts.tolist(), ends, strict=True):
                mask = 0
                for b in bucket_list[begin:end]:
                    mask |= 1 << b
                masks.append(mask)
        names, key_names = self.account_names, self.key_names
        by_key: dict[str, dict[str, int]] = {}
        overflow: dict[str, int] = defaultdict(int)
        by_account: dict[str, set[str]] = {name: set() for name in names}
        # Pairs sorted by account: accounts are numbered in order of arrival, so a key keeps its first accounts.
        for pair, mask in zip(unique_pairs.tolist(), masks, strict=True):
            account, key = names[pair >> _KEY_BITS], key_names[pair & _KEY_MASK]
            accounts = by_key.get(key)
            if accounts is None:
                accounts = by_key[key] = {}
            if len(accounts) < self._limit:
                accounts[account] = mask
                mine = by_account[account]
                if len(mine) < _MAX_KEYS_PER_ACCOUNT:
                    mine.add(key)
            else:
                overflow[key] += 1
        parents = {
            key_names[kid]: tuple(key_names[p] for p in above if p >= 0)
            for kid, above in self._parents.items()
            if key_names[kid] in by_key
        }
        self._graph = (by_key, overflow, by_account, parents)

    @property
    def by_key(self) -> dict[str, dict[str, int]]:
        if self._dirty:
            self._build()
        return self._graph[0]

    @property
    def overflow(self) -> dict[str, int]:
        if self._dirty:
            self._build()
        return self._graph[1]

    @property
    def by_account(self) -> dict[str, set[str]]:
        if self._dirty:
            self._build()
        return self._graph[2]

    @property
    def parents(self) -> dict[str, tuple[str, ...]]:
        """Address key -> the range and ASN keys it was seen under (to check a range before publishing it)."""
        if self._dirty:
            self._build()
        return self._graph[3]

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
