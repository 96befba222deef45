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
band is reported as ``verified=False`` only when asked for candidates. Many indicators list the same band set
(one prompt seen by many detectors), and prompts built from one template share most bands, so a band can
lead to thousands of indicators: LSH observations are grouped by band set, and an event counts its shared
bands per group in one pass over integer posting lists (``_BandIndex``); only groups reaching the threshold
are expanded to their observations.
"""

import ipaddress
import re
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import TypeAdapter

from indicator_exchange.match.events import IndicatorKind, Match, TrafficEvent
from indicator_exchange.stix.fingerprint import prompt_signatures
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.stix.pattern_terms import ANY_INDEX, Observation, Term, UnsupportedPattern, parse_pattern

_IP_TYPES = ("ipv4-addr", "ipv6-addr")
_KINDS: dict[str, IndicatorKind] = {
    "ipv4-addr": "proxy_ip",
    "ipv6-addr": "proxy_ip",
    "autonomous-system": "proxy_ip",
    "network-traffic": "proxy_ip",
    "x-llm-prompt": "prompt_signature",
    "email-addr": "account_pattern",
    "user-account": "account_pattern",
    "x-hashed-identifier": "account_pattern",
}
VERIFIED_LSH_BANDS = 2  # (2/32)^(1/4) = 0.5: the similarity threshold measured in the reference
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # what ipaddress reads: 0-255, no leading zeros
_DOTTED_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}\Z")
_DOMAIN_ALTERNATION = re.compile(r"^@\(?((?:[a-z0-9-]+(?:\\\.)?)+(?:\|(?:[a-z0-9-]+(?:\\\.)?)+)*)\)?\$$")


@dataclass(slots=True)
class _Compiled:
    indicator_id: str
    kind: IndicatorKind
    observation: Observation
    campaigns: list[str]
    # Only REPEATS/WITHIN observations keep hits: an empty deque takes ~760 bytes, 760 MB for 1M indicators.
    hits: deque[float] | None = None
    described: str | None = None  # the Match's ``matched`` text, written on the first match
    decided_by_bands: bool = False  # a lone LSH band term without REPEATS/WITHIN: the band count decides


@dataclass(slots=True)
class _EventView:
    """The event seen as STIX objects, built lazily per object type."""

    event: TrafficEvent
    key: bytes
    key_id: str
    _ip: ipaddress.IPv4Address | ipaddress.IPv6Address | bool | None = False
    _prompt: tuple[str, tuple[str, ...]] | bool | None = False
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
    def prompt(self) -> tuple[str, tuple[str, ...]] | None:
        """(SHA-256, LSH bands) of the event's prompt; bands only when the text is there."""
        if self._prompt is False:
            if self.event.prompt_text is not None:
                self._prompt = prompt_signatures(self.event.prompt_text, key=self.key)
            elif self.event.prompt_sha256 is not None:
                self._prompt = (self.event.prompt_sha256, ())
            else:
                self._prompt = None
        return self._prompt  # type: ignore[return-value]

    @property
    def hmacs(self) -> list[tuple[str, str]]:
        if self._hmacs is None:
            from indicator_exchange.stix.identifiers import hmac_identifier

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
            attributes = {
                ("value",): event.email,
                ("belongs_to_ref", "account_type"): "x-llm-api",
                ("belongs_to_ref", "account_login"): event.account_login,
                ("belongs_to_ref", "user_id"): event.account_id,
            }
            value = attributes.get(path)
            return [value] if value is not None else []
        elif object_type == "user-account":
            if event.account_login is None and event.account_id is None:
                return []
            attributes = {
                ("account_login",): event.account_login,
                ("user_id",): event.account_id,
                ("account_type",): "x-llm-api",
            }
            value = attributes.get(path)
            return [value] if value is not None else []
        return []


@lru_cache(maxsize=1)
def _match_list() -> TypeAdapter[list[Match]]:
    # One validation call per event: an event can match hundreds of indicators (a prompt template seen by
    # many detectors), and validating them as one list costs about half as much as constructing each Match.
    return TypeAdapter(list[Match])


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


class _BandIndex:
    """LSH band -> the band-set groups that list it.

    Most bands are listed by one group (each prompt family has its own bands): those map straight to the group,
    and an event sharing only such bands is counted in plain Python. A band several groups list maps to ``~n``,
    its posting list in one integer array (CSR); an event that shares one is counted by numpy over the
    concatenated posting lists, instead of one set intersection per candidate. Built once the indicators are
    all filed.
    """

    __slots__ = ("band_ids", "group_count", "offsets", "postings")

    def __init__(self, postings: dict[str, list[int]], group_count: int) -> None:
        self.band_ids: dict[str, int] = {}
        several: list[list[int]] = []
        for band, groups in postings.items():
            if len(groups) == 1:
                self.band_ids[band] = groups[0]
            else:
                self.band_ids[band] = ~len(several)
                several.append(groups)
        lengths = np.fromiter(map(len, several), dtype=np.int64, count=len(several))
        self.offsets: npt.NDArray[np.int64] = np.zeros(len(several) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        dtype = np.int32 if group_count < 2**31 else np.int64
        self.postings: npt.NDArray[np.signedinteger[Any]] = np.fromiter(
            chain.from_iterable(several), dtype=dtype, count=int(self.offsets[-1])
        )
        self.group_count = group_count

    def thaw(self) -> dict[str, list[int]]:
        """The posting lists back as lists, to file more observations after matching has begun (rare)."""
        ends = self.offsets.tolist()
        return {
            band: [n] if n >= 0 else self.postings[ends[~n] : ends[~n + 1]].tolist()
            for band, n in self.band_ids.items()
        }

    def shared(self, bands: Iterable[str], at_least: int) -> tuple[list[int], list[int]]:
        """(groups, shared band counts) of the groups sharing ``at_least`` (>= 1) of the distinct ``bands``."""
        numbers = [n for n in map(self.band_ids.get, bands) if n is not None]
        if len(numbers) < at_least:  # a group lists a band once, so it cannot share more bands than we found
            return [], []
        if min(numbers) >= 0:  # only bands of one group each: a handful of ints, cheaper than any numpy call
            counts: dict[int, int] = {}
            for group in numbers:
                counts[group] = counts.get(group, 0) + 1
            groups = sorted(group for group, count in counts.items() if count >= at_least)
            return groups, [counts[group] for group in groups]
        single = [n for n in numbers if n >= 0]
        several = [~n for n in numbers if n < 0]
        starts = self.offsets[several].tolist()
        ends = self.offsets[np.asarray(several) + 1].tolist()
        found = np.concatenate(
            [self.postings[s:e] for s, e in zip(starts, ends, strict=True)]
            + [np.asarray(single, dtype=self.postings.dtype)]
        )
        if found.size * 4 >= self.group_count:
            counted = np.bincount(found)
            dense = np.flatnonzero(counted >= at_least)
            return dense.tolist(), counted[dense].tolist()
        unique, tally = np.unique(found, return_counts=True)
        keep = tally >= at_least
        return unique[keep].tolist(), tally[keep].tolist()


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
        # Keyed by the sorted bands: a 32-tuple takes a fifth of the memory of a 32-element frozenset.
        self._band_groups: dict[tuple[str, ...], int] = {}
        self._group_entries: list[list[_Compiled]] = []
        self._postings: dict[str, list[int]] | None = {}
        self._band_index: _BandIndex | None = None
        self._index_lock = threading.Lock()  # a compiled set is shared by the server's worker threads
        self._hmac: dict[str, list[_Compiled]] = defaultdict(list)
        self._domains: dict[str, list[_Compiled]] = defaultdict(list)
        self._scan: list[_Compiled] = []

    @classmethod
    def build(
        cls,
        indicators: Iterable[Mapping[str, Any]],
        *,
        community_key: bytes,
        key_id: str,
        now: datetime | None = None,
        campaigns: Mapping[str, list[str]] | None = None,
        min_lsh_bands: int = 2,
    ) -> "CompiledIndicators":
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
        compiled._lsh_index()
        return compiled

    def finish(self) -> None:
        """Index what was added (the LSH band index), before the set is shared by matching threads."""
        self._lsh_index()

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
                # Most indicators are single IPv4 addresses: read those without ipaddress (~10 µs each, a third
                # of a million-indicator build). Filed exactly where the ipaddress path below files them.
                quad = _DOTTED_QUAD.match(str(value))
                if quad is not None:
                    a, b, c, d = map(int, quad.groups())
                    self._exact_ip[a << 24 | b << 16 | c << 8 | d].append(entry)
                    return
                try:
                    network = ipaddress.ip_network(str(value), strict=False)
                except ValueError:
                    continue
                if network.num_addresses == 1:
                    self._exact_ip[int(network.network_address)].append(entry)
                else:
                    self._networks[(network.version, network.prefixlen)][int(network.network_address)].append(entry)
                return
            if op == "=" and (
                (kind == "autonomous-system" and path == ("number",))
                or (kind in _IP_TYPES and path == ("belongs_to_refs", ANY_INDEX, "number"))
            ):
                self._asn[int(value)].append(entry)
                return
            if kind == "x-llm-prompt" and path == ("hashes", "SHA-256") and op == "=":
                self._sha[str(value).lower()].append(entry)
                return
            if kind == "x-llm-prompt" and path == ("lsh_bands", ANY_INDEX) and op in ("IN", "="):
                self._file_bands(entry, frozenset(value if op == "IN" else (value,)))
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

    def _file_bands(self, entry: _Compiled, bands: frozenset[str]) -> None:
        observation = entry.observation
        entry.decided_by_bands = len(observation.terms) == 1 and not (observation.repeats or observation.within)
        key = tuple(sorted(bands))
        group = self._band_groups.get(key)
        if group is None:
            group = self._band_groups[key] = len(self._group_entries)
            self._group_entries.append([])
            if self._postings is None:
                assert self._band_index is not None
                self._postings, self._band_index = self._band_index.thaw(), None
            for band in bands:
                self._postings.setdefault(band, []).append(group)
        self._group_entries[group].append(entry)

    def _lsh_index(self) -> _BandIndex:
        index = self._band_index
        if index is None:
            with self._index_lock:
                if self._band_index is None:
                    assert self._postings is not None
                    self._band_index = _BandIndex(self._postings, len(self._group_entries))
                    self._postings = None  # the index holds the same data; keeping both would double the memory
                index = self._band_index
        return index

    def _candidates(self, view: _EventView) -> Iterator[tuple[Sequence[_Compiled], int | None]]:
        """Batches of observations worth checking, with the LSH bands they share (None if not filed by bands).

        LSH batches are whole band-set groups sharing at least ``max(1, min_lsh_bands)`` bands.
        """
        event = view.event
        ip = view.ip if event.source_ip else None
        if ip is not None:
            number = int(ip)
            yield self._exact_ip.get(number, ()), None
            bits = 32 if ip.version == 4 else 128
            for (version, prefix), table in self._networks.items():
                if version == ip.version:
                    yield table.get(number >> (bits - prefix) << (bits - prefix), ()), None
        if event.asn is not None:
            yield self._asn.get(event.asn, ()), None
        if (event.prompt_text is not None or event.prompt_sha256 is not None) and (self._sha or self._group_entries):
            prompt = view.prompt
            assert prompt is not None
            yield self._sha.get(prompt[0], ()), None
            if prompt[1] and self._group_entries:
                # Sharing no band never makes a candidate, whatever min_lsh_bands says.
                groups, counts = self._lsh_index().shared(prompt[1], max(1, self.min_lsh_bands))
                for group, shared in zip(groups, counts, strict=True):
                    yield self._group_entries[group], shared
        if self._hmac and (event.identifiers or event.email):
            for _, digest in view.hmacs:
                yield self._hmac.get(digest, ()), None
        if event.email and self._domains:
            yield self._domains.get(event.email.rpartition("@")[2].casefold(), ()), None
        yield self._scan, None

    def could_match(self, view: "_EventView") -> bool:
        """False only when no observation can match the event: the hash-map lookups of ``_candidates`` alone,
        so a small set (a live index's delta segment) costs an event a few dictionary probes."""
        if self._scan or self._networks or self._group_entries:
            return True
        event = view.event
        if self._exact_ip and event.source_ip and view.ip is not None and int(view.ip) in self._exact_ip:
            return True
        if self._asn and event.asn is not None and event.asn in self._asn:
            return True
        if self._sha and (event.prompt_text is not None or event.prompt_sha256 is not None):
            prompt = view.prompt
            if prompt is not None and prompt[0] in self._sha:
                return True
        if self._hmac and (event.identifiers or event.email) and any(d in self._hmac for _, d in view.hmacs):
            return True
        return bool(self._domains and event.email and event.email.rpartition("@")[2].casefold() in self._domains)

    def view(self, event: TrafficEvent) -> "_EventView":
        """The event as this set's patterns read it; reusable across sets compiled with the same key."""
        return _EventView(event=event, key=self.key, key_id=self.key_id)

    def match_one(self, event: TrafficEvent, index: int = 0, view: "_EventView | None" = None) -> list[Match]:
        if view is None:
            view = _EventView(event=event, key=self.key, key_id=self.key_id)
        # indicator id -> verified, and the observation that matched it; no per-match containers until the
        # Match objects themselves, which keeps the garbage collector's young generation small.
        found: dict[str, bool] = {}
        matched: list[_Compiled] = []
        for entries, shared in self._candidates(view):
            verified = shared is None or shared >= VERIFIED_LSH_BANDS
            for entry in entries:
                indicator_id = entry.indicator_id
                if indicator_id in found:
                    continue
                # Most LSH observations are one band term, decided by the shared band count alone: this loop
                # runs once per match, hundreds of times for a prompt template many detectors reported.
                if not (shared is not None and entry.decided_by_bands) and not self._holds(entry, view, shared):
                    continue
                found[indicator_id] = verified
                matched.append(entry)
        if not matched:
            return []
        event_id, timestamp = event.event_id, event.timestamp
        rows = (
            {
                "event_index": index,
                "event_id": event_id,
                "timestamp": timestamp,
                "indicator_id": entry.indicator_id,
                "kind": entry.kind,
                "campaign_ids": entry.campaigns,
                "matched": entry.described or _described(entry),
                "verified": found[entry.indicator_id],
            }
            for entry in matched
        )
        return _match_list().validate_python(rows)

    def _holds(self, entry: _Compiled, view: _EventView, shared: int | None) -> bool:
        observation = entry.observation
        # A lone band term is decided by the shared band count; anything else is checked term by term.
        lone_band_term = shared is not None and len(observation.terms) == 1
        if not lone_band_term and not _observation_holds(observation, view):
            return False
        if observation.repeats or observation.within:
            return self._repeats_complete(entry, view.event.timestamp.timestamp())
        return True

    @staticmethod
    def _repeats_complete(entry: _Compiled, at: float) -> bool:
        needed = entry.observation.repeats or 1
        window = entry.observation.within
        hits = entry.hits
        if hits is None:
            hits = entry.hits = deque()
        hits.append(at)
        if window is not None:
            while hits and hits[0] <= at - window:
                hits.popleft()
        while len(hits) > needed:
            hits.popleft()
        return len(hits) >= needed

    def match(self, events: Iterable[TrafficEvent]) -> Iterator[Match]:
        return self.match_indexed(enumerate(events))

    def match_indexed(self, events: Iterable[tuple[int, TrafficEvent]]) -> Iterator[Match]:
        """Match events given with their input positions: a refused event leaves a gap, never a shift."""
        for index, event in events:
            yield from self.match_one(event, index)


def _described(entry: _Compiled) -> str:
    entry.described = _describe(entry.observation)
    return entry.described


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
