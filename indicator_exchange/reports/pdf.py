"""The PDF report, laid out with reportlab's platypus; the marking is drawn on every page's canvas."""

import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from indicator_exchange.reports import charts
from indicator_exchange.reports.model import Breakdown, SharingReport

MAX_ROWS = 100
_TLP_TEXT = {"CLEAR": "#FFFFFF", "GREEN": "#33FF00", "AMBER": "#FFC000", "AMBER+STRICT": "#FFC000", "RED": "#FF2B2B"}
_PAGE_WIDTH, _PAGE_HEIGHT = A4
_MARGIN = 15 * mm
_BODY_WIDTH = _PAGE_WIDTH - 2 * _MARGIN


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _styles() -> dict[str, ParagraphStyle]:
    sheet = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("title", parent=sheet["Title"], fontSize=18, alignment=0, spaceAfter=4),
        "h2": ParagraphStyle(
            "h2",
            parent=sheet["Heading2"],
            fontSize=13,
            spaceBefore=10,
            spaceAfter=4,
            textColor=colors.HexColor("#1f4e79"),
            keepWithNext=1,
        ),
        "h3": ParagraphStyle(
            "h3", parent=sheet["Heading3"], fontSize=10.5, spaceBefore=6, spaceAfter=3, keepWithNext=1
        ),
        "body": ParagraphStyle("body", parent=sheet["BodyText"], fontSize=9, leading=12),
        "note": ParagraphStyle("note", parent=sheet["BodyText"], fontSize=8, leading=10, textColor=colors.grey),
        "cell": ParagraphStyle("cell", parent=sheet["BodyText"], fontSize=7.5, leading=9),
    }


def _marking_box(canvas: Canvas, text: str, x: float, y: float, *, align_right: bool = False) -> None:
    """The marking as TLP 2.0 shows it: coloured capitals on black."""
    level = text.removeprefix("TLP:")
    canvas.setFont("Helvetica-Bold", 9)
    width = canvas.stringWidth(text, "Helvetica-Bold", 9) + 8
    left = x - width if align_right else x
    canvas.setFillColor(colors.black)
    canvas.rect(left, y - 3, width, 13, stroke=0, fill=1)
    canvas.setFillColor(colors.HexColor(_TLP_TEXT.get(level, "#FFFFFF")))
    canvas.drawString(left + 4, y, text)


def _decorate(report: SharingReport) -> Callable[[Canvas, SimpleDocTemplate], None]:
    def draw(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        top = _PAGE_HEIGHT - 12 * mm
        _marking_box(canvas, report.marking, _MARGIN, top)
        _marking_box(canvas, report.marking, _PAGE_WIDTH - _MARGIN, top, align_right=True)
        canvas.setFillColor(colors.black)
        canvas.setFont("Helvetica", 8)
        canvas.drawCentredString(_PAGE_WIDTH / 2, top, f"{report.organisation} - sharing report")
        canvas.setStrokeColor(colors.HexColor("#d7dce2"))
        canvas.line(_MARGIN, top - 5, _PAGE_WIDTH - _MARGIN, top - 5)
        bottom = 10 * mm
        canvas.line(_MARGIN, bottom + 12, _PAGE_WIDTH - _MARGIN, bottom + 12)
        _marking_box(canvas, report.marking, _MARGIN, bottom)
        canvas.setFillColor(colors.black)
        canvas.setFont("Helvetica", 8)
        window = f"{_when(report.window.start)} to {_when(report.window.end)}"
        canvas.drawCentredString(_PAGE_WIDTH / 2, bottom, f"{window} - page {doc.page}")
        _marking_box(canvas, report.marking, _PAGE_WIDTH - _MARGIN, bottom, align_right=True)
        canvas.restoreState()

    return draw


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    widths: Sequence[float],
    numeric: Sequence[int] = (),
    styles: dict[str, ParagraphStyle] | None = None,
) -> list[Flowable]:
    cell = (styles or _styles())["cell"]
    head = ParagraphStyle("head", parent=cell, fontName="Helvetica-Bold")
    head_right = ParagraphStyle("head-right", parent=head, alignment=2)
    shown = list(rows[:MAX_ROWS])
    # Header cells wrap (Paragraphs), so long labels over narrow numeric columns never overlap.
    data: list[list[object]] = [
        [Paragraph(escape(label), head_right if index in numeric else head) for index, label in enumerate(header)]
    ]
    for row in shown:
        data.append(
            [value if index in numeric else Paragraph(escape(str(value)), cell) for index, value in enumerate(row)]
        )
    if not shown:
        data.append(["none", *[""] * (len(header) - 1)])
    table = Table(data, colWidths=[w * _BODY_WIDTH for w in widths], repeatRows=1)
    style: list[Any] = [
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
        ("FONT", (0, 1), (-1, -1), "Helvetica", 8),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f3f5f7")),
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor("#d7dce2")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    style += [("ALIGN", (i, 0), (i, -1), "RIGHT") for i in numeric]
    table.setStyle(TableStyle(style))
    flowables: list[Flowable] = [table]
    if len(rows) > MAX_ROWS:
        flowables.append(
            Paragraph(
                f"... and {len(rows) - MAX_ROWS} more rows (see the JSON or CSV report).", (styles or _styles())["note"]
            )
        )
    flowables.append(Spacer(1, 4))
    return flowables


def _counts(title: str, rows: list[Breakdown], styles: dict[str, ParagraphStyle], first: str) -> list[Flowable]:
    return [
        Paragraph(escape(title), styles["h3"]),
        *_table(
            [first, "created", "versioned", "revoked", "expired"],
            [[r.label, r.counts.created, r.counts.versioned, r.counts.revoked, r.counts.expired] for r in rows],
            [0.52, 0.12, 0.12, 0.12, 0.12],
            numeric=(1, 2, 3, 4),
            styles=styles,
        ),
    ]


def _chart(png: bytes) -> Image:
    image = Image(io.BytesIO(png))
    scale = _BODY_WIDTH / image.imageWidth
    image.drawWidth = _BODY_WIDTH
    image.drawHeight = image.imageHeight * scale
    return image


def build_pdf(report: SharingReport) -> bytes:
    """The report as a PDF document (A4), marking in the header and footer of every page."""
    styles = _styles()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=22 * mm,
        bottomMargin=20 * mm,
        title=f"{report.marking} Sharing report",
        author=report.organisation,
        subject="indicator-exchange report",
    )
    filters = report.filters
    totals = report.published.totals
    story: list[Flowable] = [
        Paragraph("Sharing report", styles["title"]),
        Paragraph(
            escape(
                f"Window {_when(report.window.start)} to {_when(report.window.end)} (end exclusive); generated "
                f"{_when(report.generated_at)}; collections: {', '.join(filters.collections) or 'all'}; partner: "
                f"{filters.partner or 'all'}; clearance TLP:{filters.clearance.upper()}; marking {report.marking}."
            ),
            styles["body"],
        ),
        Spacer(1, 6),
        *_table(
            ["figure", "value"],
            [
                ["Indicators created", totals.created],
                ["Indicators versioned", totals.versioned],
                ["Indicators revoked", totals.revoked],
                ["Indicators expired", totals.expired],
                ["Objects served to partners", report.shared.objects_served],
                ["Requests denied", report.shared.denied],
                ["Objects received", report.received.objects],
                ["Sightings received", report.received.sightings.received],
                ["Objects rejected", report.exceptions.rejected_objects],
                ["Detections refused", report.exceptions.refused_detections],
                ["API keys created", len(report.exceptions.keys_created)],
                ["API keys revoked", len(report.exceptions.keys_revoked)],
            ],
            [0.7, 0.3],
            numeric=(1,),
            styles=styles,
        ),
        _chart(charts.activity_chart(report, "png")),
        _chart(charts.mix_chart(report, "png")),
        Paragraph("Published", styles["h2"]),
        Paragraph("Our indicators (from detectors and internal principals).", styles["note"]),
        *_counts("By kind", report.published.by_kind, styles, "kind"),
        *_counts("By TLP", report.published.by_tlp, styles, "marking"),
        *_counts("By campaign", report.published.by_campaign, styles, "campaign"),
        *_counts("By detector", report.published.by_detector, styles, "detector"),
        Paragraph("Shared", styles["h2"]),
    ]
    if report.shared.note:
        story.append(Paragraph(escape(report.shared.note), styles["note"]))
    story += _table(
        ["partner", "collection", "requests", "served", "TLP served", "first access", "last access", "denied"],
        [
            [
                r.partner,
                r.collection_title or r.collection_id or "-",
                r.requests,
                r.objects_served,
                ", ".join(f"{level.upper()} {n}" for level, n in r.tlp_served.items()) or "-",
                _when(r.first_access),
                _when(r.last_access),
                r.denied,
            ]
            for r in report.shared.rows
        ],
        [0.13, 0.15, 0.09, 0.09, 0.16, 0.15, 0.15, 0.08],
        numeric=(2, 3, 7),
        styles=styles,
    )
    sightings = report.received.sightings
    story += [
        Paragraph("Received", styles["h2"]),
        *_table(
            ["partner", "via", "collection", "objects", "indicators", "sightings", "submitted", "failed"],
            [
                [r.partner, r.via, r.collection_title, r.objects, r.indicators, r.sightings, r.submitted, r.failed]
                for r in report.received.rows
            ],
            [0.18, 0.07, 0.2, 0.11, 0.11, 0.11, 0.11, 0.11],
            numeric=(3, 4, 5, 6, 7),
            styles=styles,
        ),
        Paragraph(
            escape(
                f"{sightings.received} sightings received ({sightings.observations} observations) of "
                f"{sightings.indicators_sighted} indicators, {sightings.of_our_indicators} of them of ours; confidence "
                f"raised for {sightings.confidence_raised}, lowered for {sightings.confidence_lowered}, unchanged for "
                f"{sightings.confidence_unchanged}."
            ),
            styles["body"],
        ),
        *_table(
            ["indicator", "sightings", "observations", "confidence before", "confidence after"],
            [
                [
                    f"{e.indicator_name or ''} {e.indicator_id}",
                    e.sightings,
                    e.observations,
                    "-" if e.confidence_before is None else e.confidence_before,
                    "-" if e.confidence_after is None else e.confidence_after,
                ]
                for e in sightings.top
            ],
            [0.52, 0.12, 0.12, 0.12, 0.12],
            numeric=(1, 2, 3, 4),
            styles=styles,
        ),
    ]
    exceptions = report.exceptions
    story += [
        Paragraph("Exceptions", styles["h2"]),
        Paragraph(f"Refused detections: {exceptions.refused_detections}", styles["h3"]),
        *_table(
            ["reason", "count"],
            [[r.reason, r.count] for r in exceptions.refusal_reasons],
            [0.85, 0.15],
            numeric=(1,),
            styles=styles,
        ),
        *_table(
            ["at", "from", "kind", "field", "reason"],
            [
                [_when(r.at), r.detector or r.principal or "-", r.kind or "-", r.field or "-", r.reason]
                for r in exceptions.refusals
            ],
            [0.16, 0.14, 0.14, 0.16, 0.4],
            styles=styles,
        ),
        Paragraph(f"Objects rejected: {exceptions.rejected_objects}", styles["h3"]),
        *_table(
            ["at", "from", "via", "object", "reason"],
            [[_when(r.at), r.partner or "-", r.via, r.object_id or "-", r.reason] for r in exceptions.rejections],
            [0.16, 0.13, 0.07, 0.3, 0.34],
            styles=styles,
        ),
        Paragraph(
            f"API keys: {len(exceptions.keys_created)} created, {len(exceptions.keys_revoked)} revoked", styles["h3"]
        ),
        *_table(
            ["at", "event", "key", "principal", "kind"],
            [
                [_when(k.at), "created", k.key_id, k.principal or "-", k.principal_kind or "-"]
                for k in exceptions.keys_created
            ]
            + [
                [_when(k.at), "revoked", k.key_id, k.principal or "-", k.principal_kind or "-"]
                for k in exceptions.keys_revoked
            ],
            [0.2, 0.12, 0.28, 0.25, 0.15],
            styles=styles,
        ),
    ]
    lifecycle = report.lifecycle
    if lifecycle is not None:
        story += [
            Paragraph("Lifecycle", styles["h2"]),
            _chart(charts.lifecycle_chart(report, "png")),
            Paragraph(f"Decayed below threshold: {lifecycle.decayed}", styles["h3"]),
            *_table(
                ["kind", "count"],
                [[r.reason, r.count] for r in lifecycle.decayed_by_kind],
                [0.85, 0.15],
                numeric=(1,),
                styles=styles,
            ),
            Paragraph("Refused by warninglist", styles["h3"]),
            *_table(
                ["list", "count"],
                [[r.reason, r.count] for r in lifecycle.refused_by_warninglist],
                [0.85, 0.15],
                numeric=(1,),
                styles=styles,
            ),
            Paragraph(
                f"Revoked by feedback: {len(lifecycle.revoked_by_feedback)}; valid_until extended: "
                f"{lifecycle.extended}",
                styles["h3"],
            ),
            *_table(
                ["at", "indicator", "organisations", "reason"],
                [
                    [_when(r.at), r.indicator_id, ", ".join(r.organisations), r.reason]
                    for r in lifecycle.revoked_by_feedback
                ],
                [0.16, 0.36, 0.18, 0.3],
                styles=styles,
            ),
        ]
    decorate = _decorate(report)
    doc.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()
