"""Charts of a report (activity over time; mix by kind and TLP), drawn with matplotlib's Agg/SVG backends.

Figures are built with the object API (no pyplot global state) and under one lock, because report requests
run in a thread pool and matplotlib's rc settings are process-wide.
"""

import io
import re
import threading
from typing import Any

from indicator_exchange.reports import kinds
from indicator_exchange.reports.model import SharingReport
from indicator_exchange.stix.markings import Tlp

# TLP 2.0 colours (FIRST): the standard's RED, AMBER, GREEN; CLEAR is white, outlined here.
TLP_COLOURS: dict[str, str] = {
    "clear": "#FFFFFF",
    "green": "#33FF00",
    "amber": "#FFC000",
    "amber+strict": "#FFC000",
    "red": "#FF2B2B",
}
_SERIES = (("published", "#1f4e79"), ("received", "#2e8b57"), ("served", "#c07000"), ("denied", "#b22222"))
_LOCK = threading.Lock()
_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure: Any, fmt: str, salt: str) -> bytes:
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        figure.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def activity_chart(report: SharingReport, fmt: str = "svg") -> bytes:
    """Published, received, served and denied per bucket of the window."""
    from matplotlib.ticker import MaxNLocator

    points = report.activity.points
    with _LOCK:
        figure = _figure(8.0, 2.8)
        axes = figure.add_subplot()
        starts = [p.start for p in points]
        for name, colour in _SERIES:
            values = [getattr(p, name) for p in points]
            axes.plot(
                starts,
                values,
                label=name,
                color=colour,
                linewidth=1.6,
                marker="o" if len(points) < 40 else None,
                markersize=3,
            )
        axes.set_title(f"Activity per {report.activity.bucket}", fontsize=10, loc="left")
        axes.set_ylabel("objects / requests", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(axis="y", alpha=0.3)
        axes.set_ylim(bottom=0)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(fontsize=7, ncols=4, loc="upper left", frameon=False)
        figure.autofmt_xdate()
        return _save(figure, fmt, "activity")


def mix_chart(report: SharingReport, fmt: str = "svg") -> bytes:
    """Indicators created and versioned in the window, by kind and by TLP level."""
    from matplotlib.ticker import MaxNLocator

    published = report.published
    with _LOCK:
        figure = _figure(8.0, 2.8)
        by_kind, by_tlp = figure.subplots(1, 2)
        kind_labels = [kinds.KIND_LABELS[b.key] for b in published.by_kind]
        created = [b.counts.created for b in published.by_kind]
        versioned = [b.counts.versioned for b in published.by_kind]
        by_kind.barh(kind_labels, created, color="#1f4e79", label="created")
        by_kind.barh(kind_labels, versioned, left=created, color="#7fa7cf", label="versioned")
        by_kind.set_title("Published by kind", fontsize=10, loc="left")
        by_kind.legend(fontsize=7, frameon=False)
        by_kind.invert_yaxis()
        levels = [b.key for b in published.by_tlp]
        totals = [b.counts.created + b.counts.versioned for b in published.by_tlp]
        names = [Tlp.parse(level).label.upper().replace("+", "+\n") for level in levels]
        colours = [TLP_COLOURS[level] for level in levels]
        bars = by_tlp.bar(names, totals, color=colours, edgecolor="#000000", linewidth=0.6)
        for bar, level in zip(bars, levels, strict=True):
            if level == "amber+strict":
                bar.set_hatch("///")
        by_tlp.set_title("Published by TLP", fontsize=10, loc="left")
        by_kind.xaxis.set_major_locator(MaxNLocator(integer=True))
        by_tlp.yaxis.set_major_locator(MaxNLocator(integer=True))
        for axes in (by_kind, by_tlp):
            axes.tick_params(labelsize=7)
            axes.grid(axis="x" if axes is by_kind else "y", alpha=0.3)
        return _save(figure, fmt, "mix")


def lifecycle_chart(report: SharingReport, fmt: str = "svg") -> bytes:
    """Our indicators decayed below threshold by kind, and detections refused per warninglist (top 8)."""
    from matplotlib.ticker import MaxNLocator

    lifecycle = report.lifecycle
    decayed = lifecycle.decayed_by_kind if lifecycle else []
    refused = (lifecycle.refused_by_warninglist if lifecycle else [])[:8]
    revoked = len(lifecycle.revoked_by_feedback) if lifecycle else 0
    with _LOCK:
        figure = _figure(8.0, 2.8)
        left, right = figure.subplots(1, 2)
        left.barh([r.reason for r in decayed] or ["(none)"], [r.count for r in decayed] or [0], color="#7f6000")
        left.set_title(f"Decayed below threshold; {revoked} revoked by feedback", fontsize=10, loc="left")
        left.invert_yaxis()
        right.barh([r.reason[:40] for r in refused] or ["(none)"], [r.count for r in refused] or [0], color="#9e1b32")
        right.set_title("Detections refused by warninglist", fontsize=10, loc="left")
        right.invert_yaxis()
        for axes in (left, right):
            axes.tick_params(labelsize=7)
            axes.grid(axis="x", alpha=0.3)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        return _save(figure, fmt, "lifecycle")


def inline_svg(svg: bytes) -> str:
    """The SVG document as an element to embed in HTML (no XML prologue or doctype)."""
    return _METADATA.sub("", _XML_PROLOGUE.sub("", svg.decode(), count=1), count=1)
