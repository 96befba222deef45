"""A report in each of its formats: JSON (the model), CSV (long rows), HTML (Jinja2) and PDF (reportlab).

HTML and PDF carry the report's marking in a header and a footer on every page; the PDF draws them on each
page's canvas, so no page, however a table splits, goes without them.
"""

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from indicator_exchange.reports import charts
from indicator_exchange.reports.model import Breakdown, SharingReport

FORMATS = ("html", "pdf", "csv", "json")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
CSV_COLUMNS = ("section", "dimension", "key", "label", "metric", "value")


def when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment of the report and dashboard templates (built on first use)."""
    env = Environment(
        loader=PackageLoader("indicator_exchange.reports", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters["when"] = when
    env.filters["day"] = day
    return env


def chart_markup(report: SharingReport) -> dict[str, Markup]:
    """The report's charts as inline SVG elements (matplotlib's own output, trusted)."""
    return {
        "activity": Markup(charts.inline_svg(charts.activity_chart(report, "svg"))),  # noqa: S704
        "mix": Markup(charts.inline_svg(charts.mix_chart(report, "svg"))),  # noqa: S704
        "lifecycle": Markup(charts.inline_svg(charts.lifecycle_chart(report, "svg"))),  # noqa: S704
    }


def render(report: SharingReport, fmt: str) -> bytes:
    """The report as ``fmt`` (one of ``FORMATS``)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report).encode()
    if fmt == "html":
        return render_html(report).encode()
    if fmt == "pdf":
        return render_pdf(report)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def render_json(report: SharingReport) -> bytes:
    return report.model_dump_json(indent=2).encode() + b"\n"


def render_html(report: SharingReport, *, with_charts: bool = True) -> str:
    template = environment().get_template("report.html")
    return template.render(report=report, charts=chart_markup(report) if with_charts else None)


# --- CSV ----------------------------------------------------------------------------------------------------


def csv_rows(report: SharingReport) -> Iterator[tuple[str, str, str, str, str, object]]:
    """The report's figures as long rows: section, dimension, key, label, metric, value."""
    yield ("report", "meta", "marking", "", "value", report.marking)
    yield ("report", "meta", "window_start", "", "value", report.window.start.isoformat())
    yield ("report", "meta", "window_end", "", "value", report.window.end.isoformat())
    yield ("report", "meta", "generated_at", "", "value", report.generated_at.isoformat())
    yield ("report", "meta", "organisation", "", "value", report.organisation)
    yield ("report", "meta", "clearance", "", "value", report.filters.clearance)
    yield ("report", "meta", "partner", "", "value", report.filters.partner or "")
    yield ("report", "meta", "collections", "", "value", " ".join(report.filters.collections))
    yield ("report", "meta", "schema_version", "", "value", report.schema_version)

    published = report.published
    yield from _counts_rows("total", [Breakdown(key="all", label="all", counts=published.totals)])
    yield from _counts_rows("by_kind", published.by_kind)
    yield from _counts_rows("by_tlp", published.by_tlp)
    yield from _counts_rows("by_campaign", published.by_campaign)
    yield from _counts_rows("by_detector", published.by_detector)

    shared = report.shared
    yield ("shared", "total", "all", "", "available", str(shared.available).lower())
    for metric in ("requests", "objects_served", "denied"):
        yield ("shared", "total", "all", "", metric, getattr(shared, metric))
    for level, count in shared.tlp_served.items():
        yield ("shared", "total", "all", "", f"tlp_{level}", count)
    for row in shared.rows:
        key = f"{row.partner}/{row.collection_id or ''}"
        label = f"{row.partner} / {row.collection_title or row.collection_id or ''}"
        for metric in ("requests", "objects_served", "denied"):
            yield ("shared", "partner_collection", key, label, metric, getattr(row, metric))
        yield ("shared", "partner_collection", key, label, "first_access", _iso(row.first_access))
        yield ("shared", "partner_collection", key, label, "last_access", _iso(row.last_access))
        for level, count in row.tlp_served.items():
            yield ("shared", "partner_collection", key, label, f"tlp_{level}", count)

    received = report.received
    yield ("received", "total", "all", "", "objects", received.objects)
    for got in received.rows:
        key = f"{got.partner}/{got.via}/{got.collection_id}"
        label = f"{got.partner} ({got.via}) / {got.collection_title}"
        for metric in ("objects", "indicators", "sightings", "submitted", "failed"):
            yield ("received", "partner_collection", key, label, metric, getattr(got, metric))
    sightings = received.sightings
    for metric in (
        "received",
        "observations",
        "indicators_sighted",
        "of_our_indicators",
        "confidence_raised",
        "confidence_lowered",
        "confidence_unchanged",
        "mean_confidence_change",
    ):
        value = getattr(sightings, metric)
        yield ("received", "sightings", "all", "", metric, "" if value is None else value)
    for effect in sightings.top:
        for metric in ("sightings", "observations", "confidence_before", "confidence_after"):
            value = getattr(effect, metric)
            yield (
                "received",
                "sighted_indicator",
                effect.indicator_id,
                effect.indicator_name or "",
                metric,
                "" if value is None else value,
            )

    exceptions = report.exceptions
    yield ("exceptions", "total", "all", "", "refused_detections", exceptions.refused_detections)
    yield ("exceptions", "total", "all", "", "rejected_objects", exceptions.rejected_objects)
    yield ("exceptions", "total", "all", "", "keys_created", len(exceptions.keys_created))
    yield ("exceptions", "total", "all", "", "keys_revoked", len(exceptions.keys_revoked))
    for reason in exceptions.refusal_reasons:
        yield ("exceptions", "refusal_reason", reason.reason, "", "count", reason.count)
    for reason in exceptions.rejection_reasons:
        yield ("exceptions", "rejection_reason", reason.reason, "", "count", reason.count)
    for event in exceptions.keys_created:
        yield ("exceptions", "key_created", event.key_id, event.principal or "", "at", event.at.isoformat())
    for event in exceptions.keys_revoked:
        yield ("exceptions", "key_revoked", event.key_id, event.principal or "", "at", event.at.isoformat())

    lifecycle = report.lifecycle
    if lifecycle is not None:
        yield ("lifecycle", "total", "all", "", "decayed", lifecycle.decayed)
        yield ("lifecycle", "total", "all", "", "revoked_by_feedback", len(lifecycle.revoked_by_feedback))
        yield ("lifecycle", "total", "all", "", "extended", lifecycle.extended)
        for kind in lifecycle.decayed_by_kind:
            yield ("lifecycle", "decayed_kind", kind.reason, "", "count", kind.count)
        for revocation in lifecycle.revoked_by_feedback:
            voters = " ".join(revocation.organisations)
            yield ("lifecycle", "revoked", revocation.indicator_id, voters, "at", revocation.at.isoformat())
        for listed in lifecycle.refused_by_warninglist:
            yield ("lifecycle", "refused_warninglist", listed.reason, "", "count", listed.count)

    for point in report.activity.points:
        for metric in ("published", "received", "served", "denied"):
            yield ("activity", report.activity.bucket, point.start.isoformat(), "", metric, getattr(point, metric))


def _counts_rows(dimension: str, rows: list[Breakdown]) -> Iterator[tuple[str, str, str, str, str, object]]:
    for row in rows:
        for metric in ("created", "versioned", "revoked", "expired"):
            yield ("published", dimension, row.key, row.label, metric, getattr(row.counts, metric))


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def render_csv(report: SharingReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(report))
    return buffer.getvalue()


def render_pdf(report: SharingReport) -> bytes:
    from indicator_exchange.reports.pdf import build_pdf

    return build_pdf(report)
