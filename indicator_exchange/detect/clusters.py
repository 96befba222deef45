"""Agreement: accounts become a cluster only through edges that already join two independent signals.

Every edge links accounts of one counted prompt family (not allowlisted, spanning ``family_min_accounts``
accounts, each account focused on it) that are *also* synchronised on one piece of infrastructure, or *also*
signed up in one registration wave. Shared infrastructure alone therefore never links anyone, nor does a
popular template alone. Components of at least ``cluster_min_accounts`` accounts whose second signal covers
``agree_min_share`` of them are reported, with what each signal scored.
"""

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from indicator_exchange.detect.config import DetectConfig
from indicator_exchange.detect.signals.families import Family
from indicator_exchange.detect.signals.focus import capability, focus
from indicator_exchange.detect.signals.infra import InfraIndex
from indicator_exchange.detect.signals.waves import WaveIndex
from indicator_exchange.detect.unionfind import UnionFind


@dataclass(slots=True)
class FamilyUse:
    """A prompt family a cluster uses: the texts stay in memory; only fingerprints are ever written."""

    texts: Counter[str]
    capability: str
    accounts: int
    prompts: int


@dataclass(slots=True)
class Cluster:
    members: set[str]
    first_seen: float
    last_seen: float
    requests: int
    signals: dict[str, float]
    keys: dict[str, list[int]] = field(default_factory=dict)
    """Infrastructure key -> [cluster accounts on it, all accounts on it, addresses under it the cluster never
    used (ranges and ASNs; 0 for an address)]."""
    domains: dict[str, list[int]] = field(default_factory=dict)
    """Email domain -> [cluster signups, all signups]."""
    waves: list[tuple[str, int, int]] = field(default_factory=list)
    """(key, signups, seconds) of the waves its members signed up in."""
    families: list[FamilyUse] = field(default_factory=list)
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Address key -> its range and ASN keys, for the addresses the cluster used."""
    shapes: dict[str, list[int]] = field(default_factory=dict)
    """Login shape (a regex) -> [cluster accounts with it, all accounts with it]."""
    identifiers: dict[str, list[int]] = field(default_factory=dict)
    """'<type>:<HMAC>' -> [cluster accounts with it, all accounts with it]."""

    @property
    def key(self) -> str:
        digest = hashlib.sha256("\n".join(sorted(self.members)).encode()).hexdigest()
        return f"hydra-{digest[:16]}"

    def absorb(self, other: "Cluster") -> None:
        """Merge a cluster of a later window that shares members with this one."""
        self.members |= other.members
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.requests += other.requests
        for name, score in other.signals.items():
            self.signals[name] = max(self.signals.get(name, 0.0), score)
        pairs = (
            (self.keys, other.keys),
            (self.domains, other.domains),
            (self.shapes, other.shapes),
            (self.identifiers, other.identifiers),
        )
        for mine, theirs in pairs:
            for key, values in theirs.items():
                counts = mine.setdefault(key, [0] * len(values))
                for i, value in enumerate(values):
                    counts[i] += value
        self.waves += other.waves
        self.parents |= other.parents
        self.families += other.families


@dataclass(slots=True)
class WindowData:
    start: float
    end: float
    families: dict[int, Family]
    infra: InfraIndex
    waves: WaveIndex
    prompts: dict[str, int]
    requests: dict[str, int]
    spans: dict[str, list[float]]
    signup_domain: dict[str, str]
    login_shape: dict[str, str] = field(default_factory=dict)
    identifiers: dict[str, set[str]] = field(default_factory=dict)


def _confidence(signals: dict[str, float]) -> float:
    # Independent evidence multiplies the odds of a mistake down; the weights say how much each alone is
    # worth (bench/eval_detect.py prints precision per confidence band to check them).
    miss = 1.0
    for name, weight in (("family", 0.6), ("focus", 0.4), ("infra", 0.7), ("wave", 0.5)):
        miss *= 1.0 - weight * signals.get(name, 0.0)
    return round(min(0.99, max(0.5, 1.0 - miss)), 2)


def analyse(window: WindowData, config: DetectConfig) -> list[Cluster]:
    """The clusters of one closed window."""
    counted = {
        fid: f
        for fid, f in window.families.items()
        if not f.allowlisted and len(f.accounts) >= config.family_min_accounts
    }
    shares = focus(counted.values(), window.prompts)
    population = len(window.infra.by_account) or 1
    links: UnionFind[str] = UnionFind()
    infra_linked: set[str] = set()
    wave_linked: set[str] = set()
    waves_by_account: dict[str, list[tuple[str, int]]] = defaultdict(list)
    waves = window.waves.waves(window_seconds=window.end - window.start, config=config)
    for wave in waves:
        for account in wave.accounts:
            waves_by_account[account].append((wave.key, len(wave.accounts)))
    for family in counted.values():
        focused = [a for a in family.accounts if shares.get(a, 0.0) >= config.focus_min]
        if len(focused) < 2:
            continue
        for link in window.infra.sync_links(focused, population=population, config=config):
            links.union_all(link.accounts)
            infra_linked.update(link.accounts)
        by_wave: dict[str, list[str]] = defaultdict(list)
        for account in focused:
            for key, _ in waves_by_account.get(account, ()):
                by_wave[key].append(account)
        for accounts in by_wave.values():
            if len(accounts) >= 2:
                links.union_all(accounts)
                wave_linked.update(accounts)
    found = []
    for group in links.groups():
        if len(group) < config.cluster_min_accounts:
            continue
        members = set(group)
        infra = len(members & infra_linked) / len(members)
        wave_share = len(members & wave_linked) / len(members)
        if max(infra, wave_share) < config.agree_min_share:
            continue
        mean_focus = sum(shares[a] for a in members) / len(members)
        in_family = sum(1 for a in members if shares[a] >= config.focus_min) / len(members)
        signals = {"family": round(in_family, 3), "focus": round(mean_focus, 3)}
        signals |= {"infra": round(infra, 3), "wave": round(wave_share, 3)}
        found.append(_describe(window, members, signals, counted, waves_by_account, config))
    return found


def _describe(
    window: WindowData,
    members: set[str],
    signals: dict[str, float],
    counted: dict[int, Family],
    waves_by_account: dict[str, list[tuple[str, int]]],
    config: DetectConfig,
) -> Cluster:
    spans = [window.spans[a] for a in members if a in window.spans]
    cluster = Cluster(
        members=members,
        first_seen=min(s[0] for s in spans),
        last_seen=max(s[1] for s in spans),
        requests=sum(window.requests.get(a, 0) for a in members),
        signals=signals | {"confidence": 0.0},
    )
    cluster.signals["confidence"] = _confidence(signals)
    on_key: Counter[str] = Counter()
    for account in members:
        on_key.update(window.infra.by_account.get(account, ()))
    parents = window.infra.parents
    cluster.parents = {key: parents[key] for key in on_key if key in parents}
    ranges = {key for key, count in on_key.items() if count >= 2 and not key.startswith("ip:")}
    untouched: Counter[str] = Counter()
    if ranges:
        for address, above in parents.items():
            if address not in on_key:
                untouched.update(p for p in above if p in ranges)
    cluster.keys = {key: [count, window.infra.accounts_on(key), untouched.get(key, 0)] for key, count in on_key.items()}
    domains: Counter[str] = Counter(window.signup_domain[a] for a in members if a in window.signup_domain)
    cluster.domains = {d: [n, window.waves.totals.get(f"domain:{d}", n)] for d, n in domains.items()}
    shapes: Counter[str] = Counter(window.login_shape[a] for a in members if a in window.login_shape)
    if shapes:
        everyone = Counter(window.login_shape.values())
        cluster.shapes = {s: [n, everyone[s]] for s, n in shapes.items()}
    held: Counter[str] = Counter(i for a in members for i in window.identifiers.get(a, ()))
    if held:
        holders = Counter(i for found in window.identifiers.values() for i in found if i in held)
        cluster.identifiers = {i: [n, holders[i]] for i, n in held.items()}
    seen: set[str] = set()
    for account in members:
        for key, count in waves_by_account.get(account, ()):
            if key not in seen:
                seen.add(key)
                cluster.waves.append((key, count, config.wave_seconds))
    for family in counted.values():
        inside = sum(1 for a in family.accounts if a in members)
        if inside * 2 >= len(family.accounts):  # a family the cluster dominates, not one it merely touched
            cluster.families.append(
                FamilyUse(
                    texts=Counter(family.samples),
                    capability=capability(family),
                    accounts=inside,
                    prompts=sum(c for a, c in family.accounts.items() if a in members),
                )
            )
    return cluster


def merge(clusters: list[Cluster]) -> list[Cluster]:
    """Clusters of successive windows that share an account become one."""
    owner: dict[str, int] = {}
    groups: UnionFind[int] = UnionFind()
    for index, cluster in enumerate(clusters):
        groups.find(index)
        for account in cluster.members:
            previous = owner.setdefault(account, index)
            if previous != index:
                groups.union(previous, index)
    merged = []
    for group in groups.groups():
        first, *rest = sorted(group)
        for index in rest:
            clusters[first].absorb(clusters[index])
        merged.append(clusters[first])
    return sorted(merged, key=lambda c: (-len(c.members), c.key))
