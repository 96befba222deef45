"""Warninglists: what must never be enforced (docs/lifecycle.md#warninglists).

The MISP warninglists bundled with ``pymispwarninglists`` (read from its JSON files, offline), the IANA
special-purpose registries (``special``) and operator lists from ``IX_WARNINGLIST_FILE``. Each list has a
policy: ``refuse`` (a detection for a listed value is rejected, naming the list), ``flag`` (stored, labelled,
never enforced by the matcher) or ``off``. Ranges broader than ``IX_WARNINGLIST_MAX_PREFIX_V4``/``_V6`` are
refused whatever the lists say. Addresses and ranges are looked up in a sorted-range index (``ranges``).
"""

import importlib.util
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from indicator_exchange.lifecycle.ranges import RangeIndex, bounds, parse_bounds
from indicator_exchange.lifecycle.special import SPECIAL_ASNS, SPECIAL_NETWORKS

Policy = Literal["refuse", "flag", "off"]
POLICIES: tuple[Policy, ...] = ("refuse", "flag", "off")

# Shared infrastructure that also hosts the proxies this exchange exists to share (cloud tenants, VPN exits):
# flagged, not refused, so the evidence is kept but never enforced on everyone behind it.
_FLAG_BY_DEFAULT = re.compile(r"aws|amazon|azure|gcp|google cloud|ovh|vpn|datacenter|cluster ip", re.IGNORECASE)
# A throwaway-mail indicator is exactly a disposable domain; the million-site lists cost ~200 MB per worker.
_OFF_BY_DEFAULT = re.compile(r"disposable email|1,000,000|1million", re.IGNORECASE)
_DOMAIN_ATTRIBUTES = frozenset({"domain", "hostname"})


class WarninglistFileError(ValueError):
    """``IX_WARNINGLIST_FILE`` cannot be used; the message says which entry and why."""


@dataclass(frozen=True, slots=True)
class Hit:
    list_name: str
    policy: Policy
    value: str

    def reason(self) -> str:
        return f"{self.value} is on the warninglist '{self.list_name}' (policy {self.policy})"


@dataclass(slots=True)
class Verdict:
    refused: list[Hit] = field(default_factory=list)
    flagged: list[Hit] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.refused and not self.flagged


@dataclass(frozen=True, slots=True)
class ListInfo:
    name: str
    source: str  # misp | iana | operator
    policy: Policy
    entries: int


class Warninglists:
    """Every list, indexed; ``check_*`` answer the hits of one value, ``check_values`` a whole indicator."""

    def __init__(
        self,
        *,
        infos: dict[str, ListInfo],
        networks: Iterable[tuple[int, int, int, str]],
        asns: Iterable[tuple[int, int, str]],
        domains: dict[str, set[str]],
        exact_domains: dict[str, set[str]],
        max_prefix_v4: int,
        max_prefix_v6: int,
    ) -> None:
        self.infos = infos
        v4: list[tuple[int, int, str]] = []
        v6: list[tuple[int, int, str]] = []
        for version, first, last, name in networks:
            (v4 if version == 4 else v6).append((first, last, name))
        self._v4, self._v6 = RangeIndex(v4), RangeIndex(v6)
        self._asn = RangeIndex(asns)
        self._domains = {d: frozenset(n) for d, n in domains.items()}
        self._exact = {d: frozenset(n) for d, n in exact_domains.items()}
        self.max_prefix_v4, self.max_prefix_v6 = max_prefix_v4, max_prefix_v6

    def _hits(self, names: Iterable[str], value: str, verdict: Verdict) -> None:
        for name in sorted(names):
            policy = self.infos[name].policy
            if policy == "refuse":
                verdict.refused.append(Hit(name, policy, value))
            elif policy == "flag":
                verdict.flagged.append(Hit(name, policy, value))

    def check_network(self, value: str, verdict: Verdict | None = None) -> Verdict:
        """An address or CIDR range: listed when it overlaps a listed range (either inside the other).

        ``ValueError`` when ``value`` is neither. Parsed with ``inet_pton`` (``ranges.parse_bounds``): this is
        the per-detection hot path."""
        verdict = verdict or Verdict()
        version, start, end = parse_bounds(value)
        bits = 32 if version == 4 else 128
        prefix = bits - (end - start).bit_length()
        limit = self.max_prefix_v4 if version == 4 else self.max_prefix_v6
        index = self._v4 if version == 4 else self._v6
        if start == end:
            names = index.point(start)
            if names:
                self._hits(
                    names, str(ipaddress.IPv4Address(start) if version == 4 else ipaddress.IPv6Address(start)), verdict
                )
            return verdict
        names = index.overlap(start, end)
        if prefix >= limit and not names:
            return verdict  # the common case: no text is built
        network = ipaddress.IPv4Network((start, prefix)) if version == 4 else ipaddress.IPv6Network((start, prefix))
        shown = network.compressed
        if prefix < limit:
            setting = "IX_WARNINGLIST_MAX_PREFIX_V4" if version == 4 else "IX_WARNINGLIST_MAX_PREFIX_V6"
            verdict.refused.append(Hit(f"broader than /{limit} ({setting})", "refuse", shown))
        if names:
            self._hits(names, shown, verdict)
        return verdict

    def check_asn(self, asn: int, verdict: Verdict | None = None) -> Verdict:
        verdict = verdict or Verdict()
        names = self._asn.point(asn)
        if names:
            self._hits(names, f"AS{asn}", verdict)
        return verdict

    def check_domain(self, domain: str, verdict: Verdict | None = None) -> Verdict:
        """A domain is listed when it, or a parent domain, is on a hostname list, or it is on a string list."""
        verdict = verdict or Verdict()
        domain = domain.strip().rstrip(".").casefold()
        names: set[str] = set(self._exact.get(domain, ()))
        labels = domain.split(".")
        for i in range(len(labels)):
            names.update(self._domains.get(".".join(labels[i:]), ()))
        if names:
            self._hits(names, domain, verdict)
        return verdict

    def check_values(
        self, *, networks: Iterable[str] = (), asns: Iterable[int] = (), domains: Iterable[str] = ()
    ) -> Verdict:
        verdict = Verdict()
        for network in networks:
            self.check_network(network, verdict)
        for asn in asns:
            self.check_asn(asn, verdict)
        for domain in domains:
            self.check_domain(domain, verdict)
        return verdict


def misp_lists() -> list[dict[str, object]]:
    """The MISP warninglists bundled with ``pymispwarninglists``, as their JSON (read offline, once per build)."""
    # Located without importing the package: its import builds its own slower index (seconds).
    spec = importlib.util.find_spec("pymispwarninglists")
    if spec is None or not spec.submodule_search_locations:
        raise WarninglistFileError("the pymispwarninglists package is not installed (make install)")
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "misp-warninglists" / "lists"
    lists = []
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        path = folder / "list.json"
        if path.is_file():
            lists.append(json.loads(path.read_text(encoding="utf-8")))
    return lists


def default_policy(name: str) -> Policy:
    if _OFF_BY_DEFAULT.search(name):
        return "off"
    if _FLAG_BY_DEFAULT.search(name):
        return "flag"
    return "refuse"


def build(path: str | None, *, max_prefix_v4: int = 16, max_prefix_v6: int = 32, misp: bool = True) -> Warninglists:
    """Every list with its policy: built-in defaults, then the file at ``path`` (``WarninglistFileError``).

    The file: ``{"policies": {LIST NAME: "refuse"|"flag"|"off"}, "lists": [{"name", "policy", "networks",
    "asns", "domains"}]}``; ``asns`` entries are numbers or ``[first, last]`` ranges.
    """
    config = _read(path)
    overrides = config.policies
    infos: dict[str, ListInfo] = {}
    networks: list[tuple[int, int, int, str]] = []
    asns: list[tuple[int, int, str]] = []
    domains: dict[str, set[str]] = {}
    exact: dict[str, set[str]] = {}

    def add(name: str, source: str, entries: int) -> bool:
        policy = overrides.get(name, "refuse" if source != "misp" else default_policy(name))
        infos[name] = ListInfo(name, source, policy, entries)
        return policy != "off"

    for name, cidrs in SPECIAL_NETWORKS.items():
        if add(name, "iana", len(cidrs)):
            networks.extend((*parse_bounds(c), name) for c in cidrs)
    for name, spans in SPECIAL_ASNS.items():
        if add(name, "iana", len(spans)):
            asns.extend((first, last, name) for first, last in spans)
    for data in misp_lists() if misp else []:
        name, kind, entries = str(data["name"]), data.get("type"), data.get("list") or []
        assert isinstance(entries, list)
        attributes = set(data.get("matching_attributes") or ())  # type: ignore[call-overload]
        if kind == "cidr":
            if add(name, "misp", len(entries)):
                for entry in entries:
                    try:
                        networks.append((*parse_bounds(str(entry)), name))
                    except ValueError:
                        continue  # a handful of entries are not addresses; MISP skips them too
        elif kind in ("hostname", "string") and attributes & _DOMAIN_ATTRIBUTES and add(name, "misp", len(entries)):
            target = domains if kind == "hostname" else exact
            for entry in entries:
                key = str(entry).strip().lstrip(".").rstrip(".").casefold()
                if key:
                    target.setdefault(key, set()).add(name)
    for operator in config.lists:
        name = operator.name
        size = len(operator.networks) + len(operator.asns) + len(operator.domains)
        infos[name] = ListInfo(name, "operator", overrides.get(name, operator.policy), size)
        networks.extend((n.version, *bounds(n), name) for n in operator.networks)
        asns.extend((first, last, name) for first, last in operator.asns)
        for domain in operator.domains:
            domains.setdefault(domain, set()).add(name)
    unknown = set(overrides) - set(infos)
    if unknown:
        raise WarninglistFileError(f"{path}: policies name unknown lists: {', '.join(sorted(unknown))}")
    return Warninglists(
        infos=infos,
        networks=networks,
        asns=asns,
        domains=domains,
        exact_domains=exact,
        max_prefix_v4=max_prefix_v4,
        max_prefix_v6=max_prefix_v6,
    )


@dataclass(frozen=True, slots=True)
class _OperatorList:
    name: str
    policy: Policy
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    asns: list[tuple[int, int]]
    domains: list[str]


@dataclass(frozen=True, slots=True)
class _Config:
    policies: dict[str, Policy] = field(default_factory=dict)
    lists: list[_OperatorList] = field(default_factory=list)


def _read(path: str | None) -> _Config:
    if not path:
        return _Config()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WarninglistFileError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or set(data) - {"policies", "lists"}:
        raise WarninglistFileError(f'{path}: must be {{"policies": {{...}}, "lists": [...]}}')
    policies = data.get("policies", {})
    if not isinstance(policies, dict) or any(p not in POLICIES for p in policies.values()):
        raise WarninglistFileError(f"{path}: policies must map list names to one of {', '.join(POLICIES)}")
    lists = []
    for i, entry in enumerate(data.get("lists", [])):
        where = f"{path}: lists[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise WarninglistFileError(f"{where} needs a name")
        if set(entry) - {"name", "policy", "networks", "asns", "domains"}:
            raise WarninglistFileError(f"{where} may hold only name, policy, networks, asns and domains")
        policy = entry.get("policy", "refuse")
        if policy not in POLICIES:
            raise WarninglistFileError(f"{where}.policy must be one of {', '.join(POLICIES)}")
        try:
            networks = [ipaddress.ip_network(str(n), strict=False) for n in entry.get("networks", [])]
        except ValueError as exc:
            raise WarninglistFileError(f"{where}.networks: {exc}") from None
        asns: list[tuple[int, int]] = []
        for value in entry.get("asns", []):
            span = value if isinstance(value, list) else [value, value]
            if len(span) != 2 or not all(isinstance(v, int) and 0 <= v < 2**32 for v in span) or span[0] > span[1]:
                raise WarninglistFileError(f"{where}.asns: {value!r} is not an AS number or [first, last]")
            asns.append((span[0], span[1]))
        domains = entry.get("domains", [])
        if not isinstance(domains, list) or not all(isinstance(d, str) and d.strip(".") for d in domains):
            raise WarninglistFileError(f"{where}.domains must be a list of domain names")
        lists.append(_OperatorList(entry["name"], policy, networks, asns, [d.strip(".").casefold() for d in domains]))
    return _Config(policies, lists)


def check_file(path: str | None) -> None:
    """Read and validate the policy file without building the index (settings call it at start)."""
    _read(path)


@lru_cache(maxsize=4)
def cached(path: str | None, max_prefix_v4: int, max_prefix_v6: int) -> Warninglists:
    """One index per configuration and process: building it from the MISP JSON takes a few seconds."""
    return build(path, max_prefix_v4=max_prefix_v4, max_prefix_v6=max_prefix_v6)
