"""Build the sharing report of a window from the store and the audit trail.

Figures come from what is stored, not from what any component says it did: the STIX object versions (with
their ``date_added``, TLP, ``created_by_ref``, ``revoked`` and raw JSON), ingest provenance and refusals, TAXII
status resources, sync rejections, API keys, and the audit trail of reads. Each section is built by its module
in ``reports/sections/``; the shared facts of a run (who is "us", the window) are in ``reports/context.py``.
"""

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from indicator_exchange.reports.context import ReportRequest, bucket_for, build_context
from indicator_exchange.reports.model import Filters, SharingReport, Window
from indicator_exchange.reports.sections.activity import activity_section
from indicator_exchange.reports.sections.exceptions import exceptions_section
from indicator_exchange.reports.sections.lifecycle import lifecycle_section
from indicator_exchange.reports.sections.published import published_section
from indicator_exchange.reports.sections.received import received_section
from indicator_exchange.reports.sections.shared import shared_section
from indicator_exchange.stix.markings import Tlp


def build_report(
    session: Session, request: ReportRequest, *, identity: str, organisation: str, now: datetime | None = None
) -> SharingReport:
    """The sharing report of ``request``'s window; ``identity`` is our STIX identity (our ``created_by_ref``)."""
    now = now or datetime.now(UTC)
    ctx = build_context(session, request, identity, organisation)
    activity: dict[str, Counter[int]] = {name: Counter() for name in ("published", "received", "served", "denied")}
    published = published_section(session, ctx, activity["published"], now)
    received = received_section(session, ctx, activity["received"])
    shared = shared_section(session, ctx, activity)
    exceptions = exceptions_section(session, ctx)
    bucket, _ = bucket_for(request.start, request.end)
    return SharingReport(
        generated_at=now,
        organisation=organisation,
        window=Window(start=request.start, end=request.end),
        filters=Filters(
            collections=[str(c) for c in ctx.scope.collection_ids or ()],
            partner=request.partner,
            clearance=Tlp(ctx.scope.clearance).label,
        ),
        marking=f"TLP:{Tlp(ctx.marking).label.upper()}",
        published=published,
        shared=shared,
        received=received,
        exceptions=exceptions,
        activity=activity_section(ctx, bucket, activity),
        lifecycle=lifecycle_section(session, ctx, now),
    )
