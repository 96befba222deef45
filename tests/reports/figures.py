"""Compare a report (as JSON or CSV) with the figures the scenario knows to be true."""

import csv
import io
from collections import defaultdict

from tests.reports.scenario import CAMPAIGN_NAME, Scenario

ZERO = {"created": 0, "versioned": 0, "revoked": 0, "expired": 0}


def _by_label(rows: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    return {str(row["label"]): dict(row["counts"]) for row in rows}


def _by_key(rows: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    return {str(row["key"]): dict(row["counts"]) for row in rows}


def assert_json_figures(report: dict[str, object], expected: Scenario) -> None:
    """Every figure of the scenario, checked in the JSON report."""
    assert report["marking"] == expected.marking
    published: dict[str, list[dict[str, object]]] = report["published"]
    assert published["totals"] == expected.totals
    assert _by_key(published["by_kind"]) == expected.by_kind
    assert _by_key(published["by_tlp"]) == expected.by_tlp
    assert _by_label(published["by_campaign"]) == expected.by_campaign
    assert _by_label(published["by_detector"]) == expected.by_detector

    shared: dict[str, object] = report["shared"]
    assert shared["available"] is True
    served: dict[str, int] = defaultdict(int)
    denied: dict[str, int] = defaultdict(int)
    tlp: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in shared["rows"]:
        served[row["partner"]] += row["objects_served"]
        denied[row["partner"]] += row["denied"]
        for level, count in row["tlp_served"].items():
            tlp[row["partner"]][level] += count
        if row["objects_served"]:
            assert row["first_access"] is not None
            assert row["last_access"] is not None
    assert {k: v for k, v in served.items() if v} == expected.served
    assert {k: v for k, v in denied.items() if v and k != "(unauthenticated)"} == expected.denied
    assert denied["(unauthenticated)"] == 1
    assert {k: dict(v) for k, v in tlp.items()} == expected.tlp_served
    assert shared["objects_served"] == sum(expected.served.values())

    received: dict[str, object] = report["received"]
    rows = received["rows"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["partner"], row["via"], row["collection_id"]) == ("lab-a", "push", str(expected.inbox))
    assert {k: row[k] for k in expected.received} == expected.received
    sightings = received["sightings"]
    assert {k: sightings[k] for k in expected.sightings} == expected.sightings
    assert sightings["mean_confidence_change"] == 20.0
    assert sightings["top"][0]["indicator_id"] == expected.proxy_ids[0]
    assert (sightings["top"][0]["confidence_before"], sightings["top"][0]["confidence_after"]) == (60, 80)

    exceptions: dict[str, object] = report["exceptions"]
    assert exceptions["refused_detections"] == expected.refused_detections
    refusal = exceptions["refusals"][0]
    assert (refusal["principal"], refusal["kind"], refusal["field"]) == ("ingestor", "proxy_ip", "proxy_ip.value")
    assert "IPv4 or IPv6" in exceptions["refusal_reasons"][0]["reason"]
    assert exceptions["rejected_objects"] == expected.rejected
    assert exceptions["rejections"][0]["partner"] == "lab-a"
    assert len(exceptions["keys_created"]) == expected.keys_created
    assert len(exceptions["keys_revoked"]) == expected.keys_revoked
    assert exceptions["keys_revoked"][0]["principal"] == "lab-b"

    points = report["activity"]["points"]
    assert sum(p["published"] for p in points) == expected.published_versions
    assert sum(p["received"] for p in points) == expected.received["objects"]
    assert sum(p["served"] for p in points) == sum(expected.served.values())
    assert sum(p["denied"] for p in points) == sum(expected.denied.values()) + 1


def csv_figures(text: str) -> dict[tuple[str, str, str, str], str]:
    """(section, dimension, key-or-label, metric) -> value, from the CSV report."""
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == ["section", "dimension", "key", "label", "metric", "value"]
    figures: dict[tuple[str, str, str, str], str] = {}
    for row in reader:
        figures[(row["section"], row["dimension"], row["key"], row["metric"])] = row["value"]
        if row["label"]:
            figures[(row["section"], row["dimension"], row["label"], row["metric"])] = row["value"]
    return figures


def assert_csv_figures(text: str, expected: Scenario) -> None:
    figures = csv_figures(text)
    assert figures[("report", "meta", "marking", "value")] == expected.marking
    for metric, value in expected.totals.items():
        assert figures[("published", "total", "all", metric)] == str(value)
    for dimension, table in (
        ("by_kind", expected.by_kind),
        ("by_tlp", expected.by_tlp),
        ("by_campaign", expected.by_campaign),
        ("by_detector", expected.by_detector),
    ):
        for key, counts in table.items():
            for metric, value in counts.items():
                assert figures[("published", dimension, key, metric)] == str(value), (dimension, key, metric)
    assert figures[("shared", "total", "all", "objects_served")] == str(sum(expected.served.values()))
    assert figures[("received", "total", "all", "objects")] == str(expected.received["objects"])
    key = f"lab-a/push/{expected.inbox}"
    for metric, value in expected.received.items():
        assert figures[("received", "partner_collection", key, metric)] == str(value)
    for metric, value in expected.sightings.items():
        assert figures[("received", "sightings", "all", metric)] == str(value)
    assert figures[("exceptions", "total", "all", "rejected_objects")] == str(expected.rejected)
    assert figures[("exceptions", "total", "all", "refused_detections")] == str(expected.refused_detections)
    assert figures[("exceptions", "total", "all", "keys_created")] == str(expected.keys_created)
    assert figures[("exceptions", "total", "all", "keys_revoked")] == str(expected.keys_revoked)
    assert CAMPAIGN_NAME in text
