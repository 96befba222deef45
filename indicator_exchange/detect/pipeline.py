"""The detector end to end, for the CLI and the benchmarks: read, detect, describe."""

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from indicator_exchange.detect.config import DetectConfig
from indicator_exchange.detect.engine import Detector
from indicator_exchange.detect.output import AnyDetection, ClusterReport, ClustersFile, Publisher, summary
from indicator_exchange.detect.reader import LineError, read_events
from indicator_exchange.ingest.convert import scaffold_texts
from indicator_exchange.settings import Settings


@dataclass(slots=True)
class Outcome:
    reports: list[ClusterReport]
    detections: list[AnyDetection]
    clusters_file: ClustersFile


def run(
    stream: IO[bytes],
    *,
    config: DetectConfig,
    settings: Settings,
    shard: tuple[int, int] | None = None,
    on_error: Callable[[LineError], None] | None = None,
) -> Outcome:
    """One pass over ``stream``; the clusters, their detections and the clusters file."""
    allowlist = list(scaffold_texts(settings.scaffold_allowlist).values())
    detector = Detector(config, allowlist=allowlist, shard=shard, on_error=on_error)
    # The pass allocates a few objects per line and frees them at once; it builds no reference cycles, so the
    # cyclic collector only rescans the window's long-lived state, again and again. Off for the pass.
    collecting = gc.isenabled()
    gc.disable()
    try:
        events = read_events(
            stream,
            max_line_bytes=config.max_line_bytes,
            max_lag_seconds=config.max_lag_seconds,
            key=settings.community_key_bytes,
        )
        detector.feed(events)
        clusters = detector.finish()
    finally:
        if collecting:
            gc.enable()
    publisher = Publisher(
        config,
        key=settings.community_key_bytes,
        key_id=settings.community_key_id,
        scaffold_file=settings.scaffold_allowlist,
    )
    reports = []
    detections: list[AnyDetection] = []
    for cluster in clusters:
        report = publisher.report(cluster)
        found = list(publisher.detections(cluster, report))
        if not found:
            continue  # nothing publishable: not reported either, so the two outputs agree
        reports.append(report)
        detections += found
    clusters_file = ClustersFile(
        window_seconds=config.window_seconds,
        clusters=reports,
        summary=summary(detector.counts, reports, len(detections)),
    )
    return Outcome(reports=reports, detections=detections, clusters_file=clusters_file)
