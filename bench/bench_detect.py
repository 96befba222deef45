"""Speed and memory of ``indicator-exchange detect``: events per CPU-second on one core, and peak RSS at growing
log sizes (memory must stay flat: state is bounded by the window, not the log).

    python bench/bench_detect.py [--sizes 1000000,4000000] [--days 4] [--accounts 20000] [--before DIR]
    python bench/bench_detect.py --unionfind     # our union-find against networkx on the same edges

A base log from ``gen_traffic.py`` (cached under ``bench/.data/``) is replayed as many times as a size needs,
each replay shifted by the base log's length in days, into a fresh worker process that runs the detector on
standard input; the worker reports its own CPU time, wall time and peak RSS. CPU time is the figure to read
on a shared machine: wall time includes waiting for the core. ``loop ns`` (a fixed pure-Python loop) is printed
beside it so runs on machines of different speed or load can be compared. ``--before DIR`` (a checkout of
an earlier commit, e.g. ``git worktree add /tmp/before HEAD~3``) runs that code's detector on the same events
just before each size, in the same run, and prints the ratio.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"


def _loop_ns() -> float:
    table = {i: i for i in range(1024)}
    started = time.process_time()
    for i in range(2_000_000):
        table.get(i & 1023)
    return (time.process_time() - started) / 2_000_000 * 1e9


def worker() -> None:
    from indicator_exchange.detect.config import DetectConfig
    from indicator_exchange.detect.pipeline import run
    from indicator_exchange.settings import Settings

    started, cpu = time.perf_counter(), time.process_time()
    outcome = run(sys.stdin.buffer, config=DetectConfig(), settings=Settings())
    summary = outcome.clusters_file.summary
    result = {
        "events": summary.events,
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - started,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "clusters": summary.clusters,
        "loop_ns": _loop_ns(),
    }
    print(json.dumps(result))


def _base(days: int, accounts: int) -> Path:
    DATA.mkdir(exist_ok=True)
    path = DATA / f"traffic-{accounts}a-{days}d.jsonl"
    if not path.exists():
        labels = str(path.with_suffix(".labels"))
        command = [sys.executable, str(HERE / "gen_traffic.py"), "-o", str(path), "--labels", labels]
        subprocess.run([*command, "--accounts", str(accounts), "--days", str(days)], check=True)
    return path


def _replay(base: Path, days: int, events: int, sink: "subprocess.Popen[bytes]") -> None:
    assert sink.stdin is not None
    sent = 0
    shift = 0
    while sent < events:
        offset = timedelta(days=days * shift)
        with base.open("rb") as lines:
            for line in lines:
                if shift:
                    # '{"timestamp": "2026-11-30T12:34:56.789Z", ...': rewrite the stamp only.
                    stamp = line[15 : line.index(b'"', 15)].decode()
                    moved = (datetime.fromisoformat(stamp) + offset).isoformat().replace("+00:00", "Z")
                    line = line[:15] + moved.encode() + line[15 + len(stamp) :]
                sink.stdin.write(line)
                sent += 1
                if sent >= events:
                    break
        shift += 1
    sink.stdin.close()


def _measure(base: Path, days: int, size: int, code: str | None) -> dict[str, float]:
    env = os.environ | {"PYTHONHASHSEED": "0"}
    if code is not None:
        env["PYTHONPATH"] = code  # the earlier checkout's package shadows the installed one
    child = subprocess.Popen(
        [sys.executable, __file__, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    _replay(base, days, size, child)
    assert child.stdout is not None
    out = child.stdout.read()
    if child.wait() != 0:
        raise SystemExit(f"the worker failed at {size:,} events")
    result: dict[str, float] = json.loads(out)
    return result


def speed(sizes: list[int], days: int, accounts: int, before: str | None) -> None:
    base = _base(days, accounts)
    print(f"base log {base.name}: {sum(1 for _ in base.open('rb')):,} events")
    print("code     events       CPU s   events/CPU-s   wall s   peak RSS MiB   clusters   loop ns")
    for size in sizes:
        runs = [("before", before), ("after", None)] if before else [("this", None)]
        rates = {}
        for label, code in runs:
            r = _measure(base, days, size, code)
            rates[label] = r["events"] / r["cpu"]
            print(
                f"{label:6s} {r['events']:>10,}  {r['cpu']:6.1f}   {rates[label]:12,.0f}   {r['wall']:6.1f}   "
                f"{r['rss_mib']:12.0f}   {r['clusters']:8.0f}   {r['loop_ns']:.0f}"
            )
        if before:
            print(f"       after/before: {rates['after'] / rates['before']:.2f}x events per CPU-second")


def unionfind(edges: int) -> None:
    """Components of the same random edges (accounts linked through keys) by ours and by networkx."""
    sys.path.insert(0, str(HERE.parent))
    from indicator_exchange.detect.unionfind import UnionFind

    rng = random.Random(1)
    nodes = edges // 2
    pairs = [(f"a{rng.randrange(nodes)}", f"a{rng.randrange(nodes)}") for _ in range(edges)]
    started = time.process_time()
    groups: UnionFind[str] = UnionFind()
    for a, b in pairs:
        groups.union(a, b)
    ours = sorted(len(g) for g in groups.groups())
    print(f"union-find: {edges:,} edges in {time.process_time() - started:.2f} s CPU, {len(ours):,} components")
    try:
        import networkx
    except ImportError:
        print("networkx is not installed in this interpreter: run this with one that has it")
        return
    started = time.process_time()
    graph = networkx.Graph()
    graph.add_edges_from(pairs)
    theirs = sorted(len(c) for c in networkx.connected_components(graph))
    print(f"networkx {networkx.__version__}: {time.process_time() - started:.2f} s CPU, {len(theirs):,} components")
    assert ours == theirs, "the two disagree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,4000000")
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--before", help="A checkout of earlier code to measure side by side (its top directory).")
    parser.add_argument("--unionfind", action="store_true")
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
    elif args.unionfind:
        unionfind(args.edges)
    else:
        speed([int(s) for s in args.sizes.split(",")], args.days, args.accounts, args.before)


if __name__ == "__main__":
    main()
