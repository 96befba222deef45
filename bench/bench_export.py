"""Peak memory of a streaming export as the collection grows (issue 6: a million objects must not need more
memory than a thousand).

For each size it fills a collection with that many indicators, then runs the export in a fresh child process
(so one run's allocations cannot hide another's) writing a STIX bundle to /dev/null, and reports:
- rss_growth_kib: peak resident memory during the export (VmHWM, reset just before) minus resident memory
  just before it;
- traced_peak_kib: peak of Python allocations during the export (tracemalloc, a second pass);
- seconds and objects per second of the untraced pass.

    .venv/bin/python bench/bench_export.py                       # 1,000 and 100,000 objects on SQLite
    .venv/bin/python bench/bench_export.py --sizes 1000,1000000  # a million (fills take a few minutes)
    IX_BENCH_DATABASE_URL=postgresql://... .venv/bin/python bench/bench_export.py
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indicator_exchange.admin import service as admin  # noqa: E402
from indicator_exchange.reports import export  # noqa: E402
from indicator_exchange.stix.markings import Tlp  # noqa: E402
from indicator_exchange.store import migrate  # noqa: E402
from indicator_exchange.store import objects as store  # noqa: E402
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope  # noqa: E402

BATCH = 2000


def _indicator(n: int) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_DNS, f'bench-{n}')}",
        "created": "2026-02-24T12:00:00.000Z",
        "modified": "2026-02-24T12:00:00.000Z",
        "name": f"Residential proxy exit {n}",
        "indicator_types": ["anonymization"],
        "pattern": f"[ipv4-addr:value = '10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}']",
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": "2026-02-24T12:00:00Z",
        "confidence": 70,
        "object_marking_refs": [Tlp.GREEN.marking_id],
    }


def fill(url: str, count: int) -> str:
    """A new collection holding ``count`` indicators; returns its id."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as session:
        if "bench" not in {r["name"] for r in admin.list_api_roots(session)}:
            admin.create_api_root(session, name="bench", title="bench")
        collection = uuid.UUID(str(admin.create_collection(session, api_root="bench", title=f"bench {count}")["id"]))
    clock = 1
    for start in range(0, count, BATCH):
        versions = []
        for n in range(start, min(start + BATCH, count)):
            obj = _indicator(n)
            versions.append(
                store.NewVersion(
                    stix_id=str(obj["id"]),
                    stix_type="indicator",
                    spec_version="2.1",
                    version=1_771_934_400_000_000,
                    modified=str(obj["modified"]),
                    tlp=int(Tlp.GREEN),
                    created_by_ref=None,
                    revoked=False,
                    raw=orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode(),
                )
            )
        with session_scope(sessions) as session:
            store.lock_collection(session, collection)
            written = store.write_versions(session, collection, versions, now_us=clock, added_by=None)
            clock = written.last_date_added or 0
    engine.dispose()
    return str(collection)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS.
    Path("/proc/self/clear_refs").write_text("5")


def _export_once(url: str, collection_id: str, *, traced: bool) -> dict[str, float]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    stats = export.ExportStats()
    with session_scope(sessions) as session, open(os.devnull, "wb") as sink:
        collection = export.resolve_collection(session, collection_id)
        plan = export.ExportRequest(collection=collection, clearance=int(Tlp.RED))
        _reset_peak_rss()
        before = _status_kib("VmRSS")
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        for chunk in export.stream(session, plan, "stix", stats):
            sink.write(chunk)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        if traced:
            tracemalloc.stop()
        after = _status_kib("VmHWM")
    engine.dispose()
    return {
        "objects": stats.objects,
        "bytes": stats.bytes,
        "seconds": seconds,
        "rss_before_kib": before,
        "rss_growth_kib": after - before,
        "traced_peak_kib": peak / 1024,
    }


def measure(url: str, collection_id: str) -> dict[str, float]:
    """Run in a child process: one untraced pass (RSS, time), then one traced pass (Python allocations)."""
    plain = _export_once(url, collection_id, traced=False)
    traced = _export_once(url, collection_id, traced=True)
    return {**plain, "traced_peak_kib": traced["traced_peak_kib"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000", help="comma-separated collection sizes")
    parser.add_argument("--measure", nargs=2, metavar=("URL", "COLLECTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    with tempfile.TemporaryDirectory(prefix="ix-bench-export-") as workdir:
        url = os.environ.get("IX_BENCH_DATABASE_URL") or f"sqlite:///{workdir}/bench.db"
        migrate.upgrade(url)
        backend = url.split(":", 1)[0]
        rows = []
        for size in (int(s) for s in args.sizes.split(",")):
            started = time.perf_counter()
            collection = fill(url, size)
            filled = time.perf_counter() - started
            child = subprocess.run(
                [sys.executable, __file__, "--measure", url, collection], capture_output=True, text=True, check=True
            )
            result = json.loads(child.stdout)
            rows.append((size, result))
            rate = result["objects"] / max(result["seconds"], 1e-9)
            print(
                f"{backend}: {size:>9,} objects filled in {filled:6.1f} s; export {result['seconds']:6.2f} s "
                f"({rate:,.0f} obj/s, {result['bytes'] / 2**20:,.1f} MiB); "
                f"RSS growth {result['rss_growth_kib']:,} KiB; traced peak {result['traced_peak_kib']:,.0f} KiB",
                flush=True,
            )
        smallest, largest = rows[0][1], rows[-1][1]
        ratio = largest["traced_peak_kib"] / max(smallest["traced_peak_kib"], 1)
        print(f"traced peak at {rows[-1][0]:,} objects is {ratio:.2f}x the peak at {rows[0][0]:,}")


if __name__ == "__main__":
    main()
