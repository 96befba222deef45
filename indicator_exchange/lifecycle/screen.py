"""Warninglists applied: detections refused or flagged at ingest, and any indicator's verdict for the matcher."""

import re
from collections.abc import Mapping
from typing import Any

from indicator_exchange.ingest.convert import Planned, Refused
from indicator_exchange.ingest.schemas import AccountPatternDetection, ProxyIpDetection
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


def screen_plan(plan: Planned, settings: Settings) -> None:
    """Refuse a detection whose values a ``refuse`` list holds (``Refused`` names the list); label the
    indicators of one a ``flag`` list holds, and say so in ``adjusted``. Revocations are never screened."""
    lists = lists_of(settings)
    detection = plan.detection
    if lists is None or detection.false_positive:
        return
    verdict = Verdict()
    field_name = "detection"
    if isinstance(detection, ProxyIpDetection):
        if detection.value is not None:
            field_name = "value"
            lists.check_network(detection.value, verdict)
        if detection.asn is not None:
            field_name = "asn"
            lists.check_asn(detection.asn, verdict)
    elif isinstance(detection, AccountPatternDetection):
        for domain in detection.email_domains or ():
            field_name = "email_domains"
            lists.check_domain(domain, verdict)
        if detection.cadence is not None:
            field_name = "cadence.email_domain"
            lists.check_domain(detection.cadence.email_domain, verdict)
    if verdict.refused:
        raise Refused(field_name, "; ".join(dict.fromkeys(hit.reason() for hit in verdict.refused)) + "; not published")
    if verdict.flagged:
        for indicator in plan.conversion.indicators:
            indicator["labels"] = sorted({*indicator.get("labels", ()), FLAG_LABEL})
        names = ", ".join(dict.fromkeys(f"'{hit.list_name}'" for hit in verdict.flagged))
        plan.conversion.adjusted.append(
            f"warninglist: {verdict.flagged[0].value} is on {names} (policy flag): published with the label "
            f"{FLAG_LABEL} and never enforced by the matcher"
        )


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
