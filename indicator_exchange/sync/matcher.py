"""Matching traffic events against STIX indicators, compiled once into fast indexes.

Each indicator's pattern becomes observations (``stix.pattern_terms``); each observation is filed under its
most selective term: exact addresses and ASNs, SHA-256s, LSH bands and HMAC identifiers in hash maps, CIDR
ranges in one hash map per prefix length, email-domain alternations as domain sets. An event looks up only
those, then every candidate observation is checked term by term, so an index never decides a match alone.
Observations with no indexable term (rare) are checked against every event.

``REPEATS n TIMES WITHIN s SECONDS`` keeps, per observation, the timestamps of its recent hits (events are
expected in roughly time order); the match is reported on the event that completes the count.

LSH: an indicator lists the 32 band hashes of a keyed MinHash. Each band agrees with probability J^4 for two
prompts of Jaccard similarity J, so sharing ``k`` bands estimates J ~ (k/32)^(1/4). A match needs
``min_lsh_bands`` shared bands (default 2, i.e. J >= 0.5 — the threshold measured in the reference); a lone
band is reported as ``verified=False`` only when asked for candidates.
"""

import ipaddress
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from indicator_exchange.stix.fingerprint import fingerprint_prompt
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.stix.pattern_terms import ANY_INDEX, Observation, Term, UnsupportedPattern, parse_pattern
from indicator_exchange.sync.events import IndicatorKind, Match, TrafficEvent

_IP_TYPES = ("ipv4-addr", "ipv6-addr")
_KINDS: dict[str, IndicatorKind] = {
    "ipv4-addr": "proxy_ip", "ipv6-addr": "proxy_ip", "autonomous-system": "proxy_ip", "network-traffic": "proxy_ip",
    "x-llm-prompt": "prompt_signature", "email-addr": "account_pattern", "user-account": "account_pattern",
    "x-hashed-identifier": "account_pattern",
}  # fmt: skip
VERIFIED_LSH_BANDS = 2  # (2/32)^(1/4) = 0.5: the similarity threshold measured in the reference
_DOMAIN_ALTERNATION = re.compile(r"^@\(?((?:[a-z0-9-]+(?:\\\.)?)+(?:\|(?:[a-z0-9-]+(?:\\\.)?)+)*)\)?\$$")


@dataclass(slots=True)
class _Compiled:
    indicator_id: str
    kind: IndicatorKind
    observation: Observation
    campaigns: list[str]
    hits: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class _EventView:
    """The event seen as STIX objects, built lazily per object type."""

    event: TrafficEvent
    key: bytes
    key_id: str
    _ip: ipaddress.IPv4Address | ipaddress.IPv6Address | bool | None = False
    _prompt: tuple[str, frozenset[str]] | bool | None = False
    _hmacs: list[tuple[str, str]] | None = None

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if self._ip is False:
            try:
                self._ip = ipaddress.ip_address(self.event.source_ip) if self.event.source_ip else None
            except ValueError:
                self._ip = None
        return self._ip  # type: ignore[return-value]

    @property
    def prompt(self) -> tuple[str, frozenset[str]] | None:
        """(SHA-256, LSH bands) of the event's prompt; bands only when the text is there."""
        if self._prompt is False:
            if self.event.prompt_text is not None:
                fp = fingerprint_prompt(self.event.prompt_text, key=self.key, key_id=self.key_id)
                self._prompt = (fp.sha256, frozenset(fp.lsh_bands))
            elif self.event.prompt_sha256 is not None:
                self._prompt = (self.event.prompt_sha256, frozenset())
            else:
                self._prompt = None
        return self._prompt  # type: ignore[return-value]

    @property
    def hmacs(self) -> list[tuple[str, str]]:
        if self._hmacs is None:
            from indicator_exchange.stix.convert import hmac_identifier

            pairs = dict(self.event.identifiers or {})
            if self.event.email and "email" not in pairs:
                pairs["email"] = self.event.email
            if self.event.email and "email-domain" not in pairs:
                pairs["email-domain"] = self.event.email.rpartition("@")[2]
            self._hmacs = [(kind, hmac_identifier(self.key, kind, value)) for kind, value in pairs.items()]
        return self._hmacs

    def values(self, object_type: str, path: tuple[str, ...]) -> list[Any]:
        """Every value the event offers for ``object_type:path`` (several for list paths)."""
        event = self.event
        if object_type in _IP_TYPES:
            ip = self.ip
            family_ok = ip is not None and (ip.version == 4) == (object_type == "ipv4-addr")
            if path == ("value",):
                return [str(ip)] if family_ok else []
            if path == ("belongs_to_refs", ANY_INDEX, "number"):
                return [event.asn] if family_ok and event.asn is not None else []
        elif object_type == "network-traffic" and path in (("src_ref", "value"),):
            return [str(self.ip)] if self.ip is not None else []
        elif object_type == "autonomous-system" and path == ("number",):
            return [event.asn] if event.asn is not None else []
        elif object_type == "x-llm-prompt":
            prompt = self.prompt
            if prompt is None:
                return []
            if path == ("hashes", "SHA-256"):
                return [prompt[0]]
            if path == ("lsh_bands", ANY_INDEX):
                return list(prompt[1])
            if path == ("normalization",):
                return ["llmsig-norm-v1"]
        elif object_type == "email-addr":
            if event.email is None:
                return []
            attributes = {("value",): event.email, ("belongs_to_ref", "account_type"): "x-llm-api",
                          ("belongs_to_ref", "account_login"): event.account_login,
                          ("belongs_to_ref", "user_id"): event.account_id}  # fmt: skip
            value = attributes.get(path)
            return [value] if value is not None else []
        elif object_type == "user-account":
            if event.account_login is None and event.account_id is None:
                return []
            attributes = {("account_login",): event.account_login, ("user_id",): event.account_id,
                          ("account_type",): "x-llm-api"}  # fmt: skip
            value = attributes.get(path)
            return [value] if value is not None else []
        return []


def _compare(term: Term, value: Any) -> bool:
    op, target = term.op, term.value
    try:
        if op == "=":
            return bool(value == target)
        if op == "!=":
            return bool(value != target)
        if op == "IN":
            return value in target
        if op == "MATCHES":
            return re.search(str(target), str(value)) is not None
        if op in ("ISSUBSET", "ISSUPERSET"):
            inner, outer = (
                ipaddress.ip_network(str(value), strict=False),
                ipaddress.ip_network(str(target), strict=False),
            )
            if op == "ISSUPERSET":
                inner, outer = outer, inner
            return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]
        if op in ("<", ">", "<=", ">="):
            return bool({"<": value < target, ">": value > target, "<=": value <= target, ">=": value >= target}[op])
        if op == "LIKE":
            regex = "^" + re.escape(str(target)).replace("%", ".*").replace("_", ".") + "$"
            return re.match(regex, str(value)) is not None
    except (TypeError, ValueError):
        return False
    return False


def _term_holds(term: Term, view: _EventView) -> bool:
    if term.object_type == "x-hashed-identifier":
        found = any(_hashed_holds(term, kind, digest) for kind, digest in view.hmacs)
    else:
        found = any(_compare(term, value) for value in view.values(term.object_type, term.path))
    return found != term.negated


def _hashed_holds(term: Term, kind: str, digest: str) -> bool:
    attributes: dict[tuple[str, ...], str] = {("value",): digest, ("identifier_type",): kind}
    value = attributes.get(term.path)
    return value is not None and _compare(term, value)


def _observation_holds(observation: Observation, view: _EventView) -> bool:
    if observation.object_type == "x-hashed-identifier":
        # All terms must hold for the same identifier (one SCO), not across identifiers.
        return any(
            all(_hashed_holds(t, kind, digest) != t.negated for t in observation.terms) for kind, digest in view.hmacs
        )
    return all(_term_holds(term, view) for term in observation.terms)


class CompiledIndicators:
    """Active indicators compiled for matching; build once, match many events."""

    def __init__(self, *, community_key: bytes, key_id: str, min_lsh_bands: int = 2) -> None:
        self.key = community_key
        self.key_id = key_id
        self.min_lsh_bands = min_lsh_bands
        self.built_at = datetime.now(UTC)
        self.indicator_count = 0
        self.skipped: dict[str, str] = {}
        self._exact_ip: dict[int, list[_Compiled]] = defaultdict(list)
        self._networks: dict[tuple[int, int], dict[int, list[_Compiled]]] = defaultdict(lambda: defaultdict(list))
        self._asn: dict[int, list[_Compiled]] = defaultdict(list)
        self._sha: dict[str, list[_Compiled]] = defaultdict(list)
        self._bands: dict[str, list[_Compiled]] = defaultdict(list)
        self._band_sets: dict[int, frozenset[str]] = {}
        self._hmac: dict[str, list[_Compiled]] = defaultdict(list)
        self._domains: dict[str, list[_Compiled]] = defaultdict(list)
        self._scan: list[_Compiled] = []

    @classmethod
    def build(
        cls, indicators: Iterable[Mapping[str, Any]], *, community_key: bytes, key_id: str, now: datetime | None = None,
        campaigns: Mapping[str, list[str]] | None = None, min_lsh_bands: int = 2,
    ) -> "CompiledIndicators":  # fmt: skip
        """Compile indicators; revoked or outside ``[valid_from, valid_until)`` at ``now`` are left out."""
        compiled = cls(community_key=community_key, key_id=key_id, min_lsh_bands=min_lsh_bands)
        moment = now or datetime.now(UTC)
        now_us = int(moment.timestamp()) * 1_000_000 + moment.microsecond
        for indicator in indicators:
            if indicator.get("revoked") is True or indicator.get("pattern_type", "stix") != "stix":
                continue
            try:
                if "valid_until" in indicator and parse_timestamp_us(indicator["valid_until"]) <= now_us:
                    continue
                if "valid_from" in indicator and parse_timestamp_us(indicator["valid_from"]) > now_us:
                    continue
            except InvalidObject as exc:
                compiled.skipped[str(indicator.get("id"))] = str(exc)
                continue
            compiled.add(indicator, (campaigns or {}).get(str(indicator["id"]), []))
        return compiled

    def add(self, indicator: Mapping[str, Any], campaigns: list[str]) -> None:
        indicator_id = str(indicator["id"])
        try:
            parsed = parse_pattern(str(indicator["pattern"]))
        except (UnsupportedPattern, ValueError) as exc:
            self.skipped[indicator_id] = str(exc)
            return
        self.indicator_count += 1
        for observation in parsed.observations:
            entry = _Compiled(indicator_id, _KINDS.get(observation.object_type, "other"), observation, campaigns)
            self._file(entry)

    def _file(self, entry: _Compiled) -> None:
        observation = entry.observation
        for term in observation.terms:
            if term.negated:
                continue
            kind, path, op, value = term.object_type, term.path, term.op, term.value
            if kind in _IP_TYPES and path == ("value",) and op in ("=", "ISSUBSET"):
                try:
                    network = ipaddress.ip_network(str(value), strict=False)
                except ValueError:
                    continue
                if network.num_addresses == 1:
                    self._exact_ip[int(network.network_address)].append(entry)
                else:
                    self._networks[(network.version, network.prefixlen)][int(network.network_address)].append(entry)
                return
            if op == "=" and ((kind == "autonomous-system" and path == ("number",))
                              or (kind in _IP_TYPES and path == ("belongs_to_refs", ANY_INDEX, "number"))):  # fmt: skip
                self._asn[int(value)].append(entry)
                return
            if kind == "x-llm-prompt" and path == ("hashes", "SHA-256") and op == "=":
                self._sha[str(value).lower()].append(entry)
                return
            if kind == "x-llm-prompt" and path == ("lsh_bands", ANY_INDEX) and op in ("IN", "="):
                bands = frozenset(value if op == "IN" else (value,))
                self._band_sets[id(entry)] = bands
                for band in bands:
                    self._bands[band].append(entry)
                return
            if kind == "x-hashed-identifier" and path == ("value",) and op == "=":
                self._hmac[str(value)].append(entry)
                return
            if kind == "email-addr" and path == ("value",) and op == "MATCHES":
                literal = _DOMAIN_ALTERNATION.match(str(value))
                if literal:
                    for domain in literal.group(1).split("|"):
                        self._domains[domain.replace("\\.", ".")].append(entry)
                    return
        self._scan.append(entry)

    def _candidates(self, view: _EventView) -> Iterator[_Compiled]:
        event = view.event
        ip = view.ip if event.source_ip else None
        if ip is not None:
            number = int(ip)
            yield from self._exact_ip.get(number, ())
            bits = 32 if ip.version == 4 else 128
            for (version, prefix), table in self._networks.items():
                if version == ip.version:
                    yield from table.get(number >> (bits - prefix) << (bits - prefix), ())
        if event.asn is not None:
            yield from self._asn.get(event.asn, ())
        if (event.prompt_text is not None or event.prompt_sha256 is not None) and (self._sha or self._bands):
            prompt = view.prompt
            assert prompt is not None
            yield from self._sha.get(prompt[0], ())
            seen: set[int] = set()
            for band in prompt[1]:
                for entry in self._bands.get(band, ()):
                    if id(entry) not in seen:
                        seen.add(id(entry))
                        yield entry
        if self._hmac and (event.identifiers or event.email):
            for _, digest in view.hmacs:
                yield from self._hmac.get(digest, ())
        if event.email and self._domains:
            yield from self._domains.get(event.email.rpartition("@")[2].casefold(), ())
        yield from self._scan

    def match_one(self, event: TrafficEvent, index: int = 0) -> list[Match]:
        view = _EventView(event=event, key=self.key, key_id=self.key_id)
        found: dict[str, Match] = {}
        for entry in self._candidates(view):
            if entry.indicator_id in found:
                continue
            verified = True
            bands = self._band_sets.get(id(entry))
            if bands is not None:
                prompt = view.prompt
                shared = len(bands & prompt[1]) if prompt else 0
                if shared < self.min_lsh_bands:
                    continue
                verified = shared >= VERIFIED_LSH_BANDS
            # A lone band term is decided by the set intersection above; anything else is checked term by term.
            lone_band_term = bands is not None and len(entry.observation.terms) == 1
            if not lone_band_term and not _observation_holds(entry.observation, view):
                continue
            qualified = entry.observation.repeats or entry.observation.within
            if qualified and not self._repeats_complete(entry, event.timestamp.timestamp()):
                continue
            found[entry.indicator_id] = Match(
                event_index=index, event_id=event.event_id, timestamp=event.timestamp, indicator_id=entry.indicator_id,
                kind=entry.kind, campaign_ids=entry.campaigns, matched=_describe(entry.observation), verified=verified,
            )  # fmt: skip
        return list(found.values())

    @staticmethod
    def _repeats_complete(entry: _Compiled, at: float) -> bool:
        needed = entry.observation.repeats or 1
        window = entry.observation.within
        hits = entry.hits
        hits.append(at)
        if window is not None:
            while hits and hits[0] <= at - window:
                hits.popleft()
        while len(hits) > needed:
            hits.popleft()
        return len(hits) >= needed

    def match(self, events: Iterable[TrafficEvent]) -> Iterator[Match]:
        for index, event in enumerate(events):
            yield from self.match_one(event, index)


def _describe(observation: Observation) -> str:
    parts = []
    for term in observation.terms:
        value = term.value
        if isinstance(value, tuple):
            value = f"({len(value)} values)"
        path = ".".join(term.path).replace(".*", "[*]")
        parts.append(f"{term.object_type}:{path} {'NOT ' if term.negated else ''}{term.op} {value}")
    text = " AND ".join(parts)
    if observation.repeats:
        text += f" REPEATS {observation.repeats} TIMES"
    if observation.within:
        text += f" WITHIN {observation.within} SECONDS"
    return text
