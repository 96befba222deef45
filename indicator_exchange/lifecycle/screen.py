"""Warninglists applied to indicators: the process's lists, and any indicator's verdict for the matcher
(detections are screened at ingest by ``ingest.screening``)."""

import re
from collections.abc import Mapping
from typing import Any

from indicator_exchange.lifecycle.warninglists import Hit, Verdict, Warninglists, cached
from indicator_exchange.settings import Settings
from indicator_exchange.stix.pattern_terms import UnsupportedPattern, parse_pattern

FLAG_LABEL = "warninglist-flagged"
_DOMAIN_ALTERNATION = re.compile(r"@\(?((?:[a-z0-9-]+(?:\\\.)?)+(?:\|(?:[a-z0-9-]+(?:\\\.)?)+)*)\)?\$")


def lists_of(settings: Settings) -> Warninglists | None:
    """The process's warninglists for these settings, or None when ``IX_WARNINGLISTS`` is off."""
    if not settings.warninglists:
        return None
    return cached(settings.warninglist_file, settings.warninglist_max_prefix_v4, settings.warninglist_max_prefix_v6)


def pattern_values(pattern: str) -> tuple[list[str], list[int], list[str]]:
    """The addresses/ranges, AS numbers and email domains a STIX pattern compares against."""
    networks: list[str] = []
    asns: list[int] = []
    domains: list[str] = []
    try:
        parsed = parse_pattern(pattern)
    except (UnsupportedPattern, ValueError):
        return networks, asns, domains
    for observation in parsed.observations:
        for term in observation.terms:
            if term.negated:
                continue
            values = term.value if isinstance(term.value, list | tuple) else [term.value]
            if term.path[-1:] == ("value",) and term.object_type in ("ipv4-addr", "ipv6-addr", "network-traffic"):
                networks.extend(str(v) for v in values)
            elif term.path[-1:] == ("number",) and term.op == "=":
                asns.extend(v for v in values if isinstance(v, int))
            elif term.object_type == "email-addr" and term.path == ("value",) and term.op == "MATCHES":
                found = _DOMAIN_ALTERNATION.search(str(term.value))
                if found:
                    domains.extend(d.replace("\\.", ".") for d in found.group(1).split("|"))
            elif term.object_type == "domain-name" and term.path == ("value",) and term.op == "=":
                domains.extend(str(v) for v in values)
    return networks, asns, domains


def indicator_verdict(indicator: Mapping[str, Any], lists: Warninglists) -> Verdict:
    """Every list hit of an indicator's pattern (any producer's): a hit of either policy is never enforced."""
    networks, asns, domains = pattern_values(str(indicator.get("pattern") or ""))
    verdict = Verdict()
    for network in networks:
        try:
            lists.check_network(network, verdict)
        except ValueError:
            continue
    for asn in asns:
        lists.check_asn(asn, verdict)
    for domain in domains:
        lists.check_domain(domain, verdict)
    if FLAG_LABEL in (indicator.get("labels") or ()) and verdict.clean:
        verdict.flagged.append(Hit("flagged by its producer", "flag", str(indicator.get("id"))))
    return verdict
