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

from array import array
from dataclasses import dataclass, field

from indicator_exchange.detect.config import DetectConfig


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
class _Single:
    account: str | None
    ts: float
    keys: "array[int]"
    """Packed: a list of 16 Python ints costs five times as much, and most prompts stay single."""
    text: str


class FamilyIndex:
    def __init__(self, config: DetectConfig, allowlist: list[list[int]]) -> None:
        self._config = config
        self._key_family: dict[int, int] = {}
        self.families: dict[int, Family] = {}
        self._young: dict[int, _Single] = {}
        self._old: dict[int, _Single] = {}
        self._next = 1
        for keys in allowlist:
            fid = self._new_id()
            self.families[fid] = Family(first_seen=0.0, last_seen=0.0, allowlisted=True)
            self._register(fid, keys)

    def _new_id(self) -> int:
        self._next += 1
        return self._next - 1

    def _register(self, fid: int, keys: list[int]) -> int:
        added = 0
        table = self._key_family
        for key in keys:
            if key and key not in table:
                table[key] = fid
                added += 1
        return added

    def add(self, account: str | None, ts: float, keys: list[int], text: str) -> int:
        """File one prompt; answers its family id."""
        table = self._key_family
        # One family is the common answer (or none): count it without a dict, fall back to one on a second.
        # Each key is looked up once: setdefault files it under the id a new family would take, and the keys
        # filed so are moved (or dropped) below if the prompt joins a family after all.
        candidate = self._next
        fresh: list[int] = []
        fid = count = 0
        hits: dict[int, int] | None = None
        for key in keys:
            if key:
                found = table.setdefault(key, candidate)
                if found == candidate:
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
        needed = self._config.family_min_bands
        if hits is not None:
            hits[fid] = count
            joined = [f for f, n in hits.items() if n >= needed]
            fid = max(joined, key=hits.__getitem__) if joined else 0
        elif count < needed:
            fid = 0
        if not fid:
            fid = self._new_id()
            self._young[fid] = _Single(account, ts, array("q", keys), text)
            return fid
        family = self.families.get(fid)
        if family is None:
            single = self._young.pop(fid, None) or self._old.pop(fid)
            family = Family(first_seen=single.ts, last_seen=single.ts)
            self.families[fid] = family
            self._file(family, single.account, single.ts, single.text)
            family.keys = sum(1 for k in single.keys if k)
        self._file(family, account, ts, text)
        room = 0 if family.allowlisted else self._config.family_max_keys - family.keys
        for key in fresh:
            if room > 0:
                table[key] = fid
                room -= 1
                family.keys += 1
            else:
                del table[key]
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
        """
        table, needed = self._key_family, self._config.family_min_bands
        for singles in (self._old, self._young):
            for fid in list(singles):
                single = singles[fid]
                hits: dict[int, int] = {}
                for key in single.keys:
                    found = table.get(key) if key else None
                    if found is not None and found != fid and found in self.families:
                        hits[found] = hits.get(found, 0) + 1
                best = max(hits, key=hits.__getitem__, default=0)
                if best and hits[best] >= needed and not self.families[best].allowlisted:
                    self._file(self.families[best], single.account, single.ts, single.text)
                    del singles[fid]

    def merged(self) -> dict[int, Family]:
        """The families at close, one-prompt families folded into those they reach."""
        self._resolve_singles()
        return dict(self.families)

    def prune(self) -> None:
        """Forget the one-prompt families older than one period, and their keys."""
        table = self._key_family
        for fid, single in self._old.items():
            for key in single.keys:
                if key and table.get(key) == fid:
                    del table[key]
        self._old, self._young = self._young, {}

    @property
    def size(self) -> int:
        """Entries held: band keys, families and one-prompt families (the bench reports it)."""
        return len(self._key_family) + len(self.families) + len(self._young) + len(self._old)
