"""What STIX validation costs: the field's tools against ours, per object, and TAXII ingest with validation off
(a ``basic`` collection) and on (``strict``), in envelopes of 1,000.

    python bench/validation.py [--n 2000] [--ingest 20000] [--repeats 3] [--backend pg|sqlite]

Per object (one core, in process): ``stix2-validator`` (``validate_instance``, strict), ``stix2.parse``
(``allow_custom``), ``stix2-patterns`` (``run_validator``, per pattern), and ours (``inspect_object`` +
``validate_object``), with every pattern new (cold cache) and again (warm cache). Ingest: ours served as
``bench/run.py`` serves it (``serve --workers 2``, PostgreSQL on loopback), a fresh server and database per
run, basic and strict alternating, ``--repeats`` runs each; the median objects/s and strict/basic ratio are
printed (the target is >= 0.80). Run it on a quiet machine.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PG_ADMIN, Budget, ingest, log, machine, make_object, start_ours

from indicator_exchange.stix.objects import inspect_object
from indicator_exchange.stix.pattern_terms import parse_pattern
from indicator_exchange.stix.pattern_validation import clear_pattern_cache, pattern_error
from indicator_exchange.stix.validation import validate_object

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"


def sample(n: int) -> list[dict[str, Any]]:
    """``n`` objects: mostly bench indicators (unique patterns), with what our converter writes mixed in."""
    golden: list[dict[str, Any]] = []
    for path in sorted(GOLDEN.glob("*.json")):
        produced = json.loads(path.read_text())
        golden += produced["indicators"] + ([produced["campaign"]] if produced["campaign"] else [])
        golden += produced["context"]
    objects = [make_object(i) for i in range(n - len(golden))] + golden
    return objects[:n]


def per_object(objects: list[dict[str, Any]], check: Callable[[dict[str, Any]], object]) -> float:
    began = time.perf_counter()
    for obj in objects:
        check(obj)
    return (time.perf_counter() - began) * 1e6 / len(objects)


def tools(n: int) -> list[tuple[str, float]]:
    import stix2
    from stix2patterns.validator import run_validator
    from stix2validator import ValidationOptions, validate_instance

    objects = sample(n)
    few = objects[: max(50, n // 10)]  # the slow tools on a tenth
    options = ValidationOptions(strict=True, disabled=["uuid-check"])
    patterns = [o["pattern"] for o in few if o["type"] == "indicator"]

    def ours(obj: dict[str, Any]) -> object:
        inspect_object(obj)
        return validate_object(obj)

    figures = [
        ("stix2-validator, validate_instance (strict)", per_object(few, lambda o: validate_instance(o, options))),
        ("stix2.parse (allow_custom)", per_object(few, lambda o: stix2.parse(o, allow_custom=True))),
        (
            "stix2-patterns, run_validator (per pattern)",
            per_object([{"p": p} for p in patterns], lambda o: run_validator(o["p"], stix_version="2.1")),
        ),
    ]
    pattern_error("[a:b = ")  # loads the ANTLR parser once, outside the timing (a one-off, not per object)
    clear_pattern_cache()
    parse_pattern.cache_clear()
    figures.append(("ours, inspect + validate, patterns new", per_object(objects, ours)))
    figures.append(("ours, inspect + validate, patterns seen", per_object(objects, ours)))
    figures.append(("ours, inspect only (basic)", per_object(objects, inspect_object)))
    return figures


def ingest_rate(backend: str, policy: str, count: int) -> float:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-validation-{policy}-"))
    database = f"ix_bench_validation_{os.getpid()}"
    server = start_ours(backend, workdir, 2, validation=policy, database=database)
    try:
        result = ingest(server, 0, count, 1000, Budget(600))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if backend == "pg":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    if "rate" not in result or "dnf" in result or "error" in result:
        raise RuntimeError(f"{policy}: {result}")
    return float(result["rate"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="Objects for the per-object figures.")
    parser.add_argument("--ingest", type=int, default=20_000, help="Objects POSTed per ingest run.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=["pg", "sqlite"], default="pg")
    args = parser.parse_args()
    print(f"### STIX validation cost — {machine()}\n")
    print("| check | µs per object |\n|---|---:|")
    for name, micros in tools(args.n):
        print(f"| {name} | {micros:,.1f} |")
    rates: dict[str, list[float]] = {"basic": [], "strict": []}
    for repeat in range(args.repeats):
        for policy in ("basic", "strict"):
            log(f"ingest run {repeat + 1}/{args.repeats}, {policy}")
            rates[policy].append(ingest_rate(args.backend, policy, args.ingest))
    before, after = statistics.median(rates["basic"]), statistics.median(rates["strict"])
    print(f"\nTAXII ingest, {args.ingest:,} objects in envelopes of 1,000, {args.backend}, median of {args.repeats}:\n")
    print("| validation | objects/s (median) | runs |\n|---|---:|---|")
    for policy, median in (("off (basic)", before), ("on (strict)", after)):
        runs = ", ".join(f"{r:,.0f}" for r in rates[policy.split("(")[1].rstrip(")")])
        print(f"| {policy} | {median:,.0f} | {runs} |")
    print(f"\nratio strict / basic: {after / before:.2f} (target >= 0.80)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
