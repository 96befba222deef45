"""Warninglists: checks per second with the full MISP lists loaded (one core), and detector ingestion with the
lists on vs off, side by side (docs/lifecycle.md#warninglists).

    python bench/bench_warninglists.py [--checks 200000] [--detections 5000] [--rounds 3] [--database-url URL]

Checks: random public IPv4 addresses, a mix of IPv4 /24 ranges, IPv6 addresses, ASNs and domains, each through
the same call ingestion makes. Ingestion: ``ingest.service.ingest`` in process (conversion, screening, dedup and
the writes, no HTTP), batches of 1,000 proxy detections into a fresh collection per round, alternating lists off
and on so both see the same machine load, in ABBA order (off-on, then on-off): every round writes into the same
database, which grows, so a fixed order would charge its growth to whichever side always runs second. The ratio
is on/off throughput.
"""

import argparse
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indicator_exchange.admin import service as admin
from indicator_exchange.auth.service import Caller
from indicator_exchange.ingest import service as ingest
from indicator_exchange.ingest.parsing import InputLine
from indicator_exchange.lifecycle import warninglists
from indicator_exchange.settings import Settings
from indicator_exchange.store import catalog, migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope


def public_ipv4(rng: random.Random) -> str:
    while True:
        first = rng.randint(1, 223)
        if first not in (10, 100, 127, 169, 172, 192, 198, 203):
            return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def bench_checks(n: int) -> None:
    started = time.perf_counter()
    lists = warninglists.build(None)
    print(
        f"build: {time.perf_counter() - started:.2f} s, {len(lists.infos)} lists "
        f"({len(lists._v4):,} IPv4 and {len(lists._v6):,} IPv6 segments)"
    )
    rng = random.Random(7)
    cases = {
        "ipv4 address": [public_ipv4(rng) for _ in range(n)],
        "ipv4 /24 range": [public_ipv4(rng).rsplit(".", 1)[0] + ".0/24" for _ in range(n // 4)],
        "ipv6 address": [
            f"2a{rng.randint(0, 15):02x}:{rng.randint(0, 65535):x}::{rng.randint(1, 65535):x}" for _ in range(n // 4)
        ],
    }
    for name, values in cases.items():
        check = lists.check_network
        started, cpu = time.perf_counter(), time.process_time()
        listed = 0
        for value in values:
            listed += not check(value).clean
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"{name:>15}: {len(values) / cpu:>10,.0f} checks per CPU second ({len(values) / elapsed:,.0f}/s wall; "
            f"{listed:,} of {len(values):,} listed)"
        )
    asns = [rng.randint(1, 400_000) for _ in range(n)]
    cpu = time.process_time()
    for asn in asns:
        lists.check_asn(asn)
    print(f"{'asn':>15}: {len(asns) / (time.process_time() - cpu):>10,.0f} checks per CPU second")
    domains = [f"mail{rng.randint(0, 10**6)}.example{rng.randint(0, 999)}.com" for _ in range(n // 4)]
    cpu = time.process_time()
    for domain in domains:
        lists.check_domain(domain)
    print(f"{'domain':>15}: {len(domains) / (time.process_time() - cpu):>10,.0f} checks per CPU second")


def lines_of(count: int, offset: int) -> list[InputLine]:
    now = datetime.now(UTC).replace(microsecond=0)
    lines = []
    for i in range(count):
        j = offset + i
        value = {
            "kind": "proxy_ip",
            "detector": "bench",
            "value": f"46.154.{j >> 8 & 255}.{j & 255}",
            "proxy_kind": "residential",
            "tlp": "amber",
            "confidence": 60,
            "first_seen": (now - timedelta(hours=1)).isoformat(),
            "last_seen": now.isoformat(),
        }
        lines.append(InputLine(line=i + 1, value=value, error=None))
    return lines


def bench_ingest(url: str, detections: int, rounds: int) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    totals = {False: 0.0, True: 0.0}  # CPU seconds of this process: the load of other processes is not ours
    warninglists.cached(None, 16, 32)  # built once per process, as a worker does at its first detection
    for round_number in range(rounds):
        for lists_on in (False, True) if round_number % 2 == 0 else (True, False):
            settings = Settings(database_url=url, warninglists=lists_on)
            with session_scope(sessions) as session:
                if "bench" not in {r["name"] for r in admin.list_api_roots(session)}:
                    admin.create_api_root(session, name="bench", title="bench")
                created = admin.create_collection(session, api_root="bench", title=f"r{round_number}-{lists_on}")
            collection_id = created["id"]
            caller = Caller(
                principal_id=uuid.uuid4(),
                name="bench",
                kind="admin",
                clearance=4,
                key_id="bench",
                identity_ref=None,
                grants={},
            )
            started = time.process_time()
            for offset in range(0, detections, 1000):
                with session_scope(sessions) as session:
                    collection = catalog.resolve_collection(session, str(collection_id))
                    result = ingest.ingest(
                        session,
                        caller=caller,
                        collection=collection,
                        lines=lines_of(min(1000, detections - offset), offset),
                        settings=settings,
                    )
                    assert result.counts()["created"] == min(1000, detections - offset), result.counts()
            totals[lists_on] += time.process_time() - started
    off, on = detections * rounds / totals[False], detections * rounds / totals[True]
    print(f"ingest lists off: {off:,.0f} detections per CPU second; on: {on:,.0f}; on/off = {on / off:.3f}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=200_000)
    parser.add_argument("--detections", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    bench_checks(args.checks)
    with tempfile.TemporaryDirectory() as tmp:
        bench_ingest(args.database_url or f"sqlite:///{tmp}/bench.db", args.detections, args.rounds)


if __name__ == "__main__":
    main()
