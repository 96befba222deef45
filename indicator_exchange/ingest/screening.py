"""Warninglists at ingest (docs/lifecycle.md#warninglists): a detection whose values a ``refuse`` list holds is
rejected naming the list; one a ``flag`` list holds is published labelled, and never enforced by the matcher."""

from indicator_exchange.ingest.convert import Planned, Refused
from indicator_exchange.ingest.schemas import AccountPatternDetection, ProxyIpDetection
from indicator_exchange.lifecycle.screen import FLAG_LABEL, lists_of
from indicator_exchange.lifecycle.warninglists import Verdict
from indicator_exchange.settings import Settings


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
