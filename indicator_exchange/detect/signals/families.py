"""Prompt families: prompts that share LSH band keys belong to one family (online leader clustering).

A prompt takes the first family that ``family_min_bands`` of its band keys point at, else starts a family of
its own; its keys then point at that family (up to ``family_max_keys`` per family). Families are never
merged: merging on any shared key chains unrelated prompts through common phrases, and so would joining on
one shared band: a common opening ("can you explain") fills a band or two of very different prompts. Most
prompts of honest traffic start a family that never grows, so one-prompt families are kept for two
``prune_every`` periods only: state stays bounded. Public scaffolds are seeded as families of their own,
marked allowlisted: prompts near them join those and never count. Families that one prompt reaches both of are
not merged either: templates that share a phrase ("show your reasoning") chained into one family that way.
"""

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from indicator_exchange.detect.config import DetectConfig
from indicator_exchange.detect.keytable import KeyTable


@dataclass(slots=True)
class Family:
    first_seen: float
    last_seen: float
    allowlisted: bool = False
    prompts: int = 0
    keys: int = 0
    accounts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    """Distinct texts (in memory only, for the published fingerprints) and how often each was sent."""


@dataclass(slots=True)
class _Block:
    """The prompts of one batch, of which those still alone (``alone``) are one-prompt families.

    Kept per batch rather than per prompt: most prompts of honest traffic stay single, and one object each
    was most of the cost of filing them. The prompt in row ``r`` has family id ``first + r``.
    """

    first: int
    accounts: list[str | None]
    stamps: list[float]
    keys: npt.NDArray[np.int64]
    texts: list[str]
    alone: npt.NDArray[np.bool_]

    def take(self, row: int) -> tuple[str | None, float, str, int]:
        """Account, time, text and key count of the single in ``row``, which stops being one."""
        self.alone[row] = False
        text, self.texts[row] = self.texts[row], ""
        return self.accounts[row], self.stamps[row], text, int(np.count_nonzero(self.keys[row]))


class FamilyIndex:
    def __init__(self, config: DetectConfig, allowlist: list[list[int]]) -> None:
        self._config = config
        self._table = KeyTable()
        """Band key -> family id (a one-prompt family's id until it grows)."""
        self.families: dict[int, Family] = {}
        self._young: list[_Block] = []
        self._old: list[_Block] = []
        self._next = 1
        for keys in allowlist:
            fid = self._next
            self._next += 1
            self.families[fid] = Family(first_seen=0.0, last_seen=0.0, allowlisted=True)
            wanted = np.unique(np.array([k for k in keys if k], dtype=np.int64))
            wanted = wanted[self._table.get(wanted) == 0]
            self._table.put(wanted, np.full(len(wanted), fid, dtype=np.int64))

    def add(self, account: str | None, ts: float, keys: list[int], text: str) -> int:
        """File one prompt; answers its family id."""
        return self.add_batch([account], [ts], np.array([keys], dtype=np.int64).reshape(1, -1), [text])[0]

    def add_batch(
        self, accounts: list[str | None], stamps: list[float], keys: npt.NDArray[np.int64], texts: list[str]
    ) -> list[int]:
        """File prompts in order, as ``add`` one by one would; answers their family ids.

        The table is probed for the whole batch at once, and for most prompts the answer is decided from that
        alone, in numpy: the family the prompt reaches on most keys (the first such, in key order) if on
        ``family_min_bands`` of them, else a family of its own. Only prompts that share a key the table does
        not hold yet with another prompt of the batch depend on the order of the batch; they go one by one,
        through a small dict of the keys the batch files.
        """
        rows = len(texts)
        if not rows:
            return []
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        probed, stops = self._table.probe(keys.ravel())
        found = probed.reshape(keys.shape)
        missing = (found == 0) & (keys != 0)
        # Which of those keys another prompt of the batch holds too: equal neighbours once sorted.
        fresh = keys[missing]
        order = np.argsort(fresh)
        ranked = fresh[order]
        twice = np.zeros(len(ranked), dtype=bool)
        equal = ranked[1:] == ranked[:-1]
        twice[1:] |= equal
        twice[:-1] |= equal
        again = np.empty(len(fresh), dtype=bool)
        again[order] = twice
        shared = np.zeros(keys.shape, dtype=bool)
        shared[missing] = again
        ordered = np.any(shared, axis=1)
        # Only a prompt that reaches the table on family_min_bands keys can join a family on them: the votes
        # (per key, how many of the prompt's keys reach the same family) are counted for those rows alone.
        index = np.arange(rows)
        target = np.zeros(rows, dtype=np.int64)
        some = np.flatnonzero(np.count_nonzero(found, axis=1) >= self._config.family_min_bands)
        if some.size:
            near = found[some]
            votes = ((near[:, :, None] == near[:, None, :]) & (near[:, None, :] != 0)).sum(axis=2)
            best = votes.argmax(axis=1)
            picked = np.arange(len(some))
            target[some] = np.where(votes[picked, best] >= self._config.family_min_bands, near[picked, best], 0)
        first = self._next
        self._next += rows
        alone = ~ordered & (target == 0)
        fids = np.where(alone, first + index, target)
        take = np.where(alone, np.count_nonzero(missing, axis=1), 0)
        block = _Block(first, list(accounts), list(stamps), keys, list(texts), alone)
        self._young.append(block)
        filed: dict[int, int] = {}
        fresh_counts = np.count_nonzero(missing, axis=1)
        for i in np.flatnonzero(~alone).tolist():
            if ordered[i]:
                fids[i] = self._one(block, i, keys[i].tolist(), found[i].tolist(), filed)
                continue
            account, ts, text = accounts[i], stamps[i], texts[i]
            block.texts[i] = ""
            family = self._grown(int(fids[i]))
            self._file(family, account, ts, text)
            room = 0 if family.allowlisted else self._config.family_max_keys - family.keys
            take[i] = min(max(0, room), int(fresh_counts[i]))
            family.keys += int(take[i])
        # The fresh keys of the prompts decided in numpy are theirs alone in the batch: file them in one go.
        chosen = missing & (np.cumsum(missing, axis=1) <= take[:, None])
        owners = np.broadcast_to(fids[:, None], keys.shape)
        self._table.put(keys[chosen], owners[chosen], stops.reshape(keys.shape)[chosen])
        if filed:
            self._table.put(
                np.fromiter(filed, dtype=np.int64, count=len(filed)),
                np.fromiter(filed.values(), dtype=np.int64, count=len(filed)),
            )
        result: list[int] = fids.tolist()
        return result

    def _grown(self, fid: int) -> Family:
        """The family ``fid``, made one out of its one-prompt family when a second prompt joins."""
        family = self.families.get(fid)
        if family is None:
            for block in (*self._young, *self._old):
                if block.first <= fid < block.first + len(block.texts):
                    account, ts, text, keys = block.take(fid - block.first)
                    break
            else:
                raise KeyError(fid)
            family = Family(first_seen=ts, last_seen=ts)
            self.families[fid] = family
            self._file(family, account, ts, text)
            family.keys = keys
        return family

    def _one(self, block: _Block, i: int, row: list[int], found_row: list[int], filed: dict[int, int]) -> int:
        """File the prompt in ``row`` of ``block``, whose keys other prompts of its batch share: ``filed``
        holds the keys the batch filed so far."""
        # One family is the common answer (or none): count it without a dict, fall back to one on a second.
        fresh: list[int] = []
        fid = count = 0
        hits: dict[int, int] | None = None
        for key, found in zip(row, found_row, strict=True):
            if not key:
                continue
            if not found:
                found = filed.get(key, 0)
                if not found:
                    fresh.append(key)
                    continue
            if found == fid:
                count += 1
            elif not fid:
                fid, count = found, 1
            else:
                if hits is None:
                    hits = {fid: count}
                hits[found] = hits.get(found, 0) + 1
        if hits is not None:
            hits[fid] = count
            joined = [f for f, n in hits.items() if n >= self._config.family_min_bands]
            fid = max(joined, key=hits.__getitem__) if joined else 0
        elif count < self._config.family_min_bands:
            fid = 0
        if not fid:
            fid = block.first + i
            block.alone[i] = True
            for key in fresh:
                filed[key] = fid
            return fid
        family = self._grown(fid)
        self._file(family, block.accounts[i], block.stamps[i], block.texts[i])
        block.texts[i] = ""
        room = 0 if family.allowlisted else self._config.family_max_keys - family.keys
        for key in fresh[: max(0, room)]:
            filed[key] = fid
            family.keys += 1
        return fid

    def _file(self, family: Family, account: str | None, ts: float, text: str) -> None:
        family.prompts += 1
        family.last_seen = max(family.last_seen, ts)
        family.first_seen = min(family.first_seen, ts)
        if account is not None:
            accounts = family.accounts
            if account in accounts:
                accounts[account] += 1
            elif len(accounts) < self._config.family_max_accounts:
                accounts[account] = 1
        samples = family.samples
        if text in samples:
            samples[text] += 1
        elif len(samples) < self._config.family_samples:
            samples[text] = 1

    def _resolve_singles(self) -> None:
        """Fold each one-prompt family into a family its keys now reach on ``family_min_bands`` keys.

        The first prompts of a template arrive before its family has keys to catch them: each starts a family
        of its own. At close the family is known, so they (often the whole traffic of a thin account) join it.
        The keys of every one-prompt family are probed at once; only those reaching a family on enough keys
        are looked at one by one.
        """
        needed = self._config.family_min_bands
        known = np.fromiter(self.families, dtype=np.int64, count=len(self.families))
        for block in (*self._old, *self._young):
            rows = np.flatnonzero(block.alone)
            if not rows.size:
                continue
            keys = block.keys[rows]
            found = self._table.get(keys.ravel()).reshape(keys.shape)
            valid = np.isin(found, known) & (found != (block.first + rows)[:, None])
            for pick in np.flatnonzero(np.count_nonzero(valid, axis=1) >= needed).tolist():
                hits: dict[int, int] = {}
                for value in found[pick][valid[pick]].tolist():
                    hits[value] = hits.get(value, 0) + 1
                best = max(hits, key=hits.__getitem__)
                if hits[best] >= needed and not self.families[best].allowlisted:
                    account, ts, text, _ = block.take(int(rows[pick]))
                    self._file(self.families[best], account, ts, text)

    def merged(self) -> dict[int, Family]:
        """The families at close, one-prompt families folded into those they reach."""
        self._resolve_singles()
        return dict(self.families)

    def prune(self) -> None:
        """Forget the one-prompt families older than one period, and their keys."""
        for block in self._old:
            rows = np.flatnonzero(block.alone)
            keys = block.keys[rows]
            owners = np.repeat(block.first + rows, keys.shape[1])
            self._table.remove(keys.ravel(), owners)
        self._old, self._young = self._young, []

    @property
    def size(self) -> int:
        """Entries held: band keys, families and one-prompt families (the bench reports it)."""
        singles = sum(int(np.count_nonzero(b.alone)) for b in (*self._young, *self._old))
        return len(self._table) + len(self.families) + singles
