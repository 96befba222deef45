"""Matching throughput against a large active indicator set (mixed kinds), on one core.

    python bench/bench_match.py [--indicators 1000000] [--events 200000] [--lsh families|shared]
    python bench/bench_match.py --live [--indicators 1000000] [--seconds 20] [--rate 20]

``--live`` measures the server's live index (``match/index.py``) on a scratch PostgreSQL database holding the
indicators: the full build at start; the time from a committed indicator to the first match request that
matches it (each request: a session, the collection's clock, ``MatchIndex.current``, the match), against a
warm request; and request throughput (100 IP/hash/identifier events each) for ``--seconds`` without writes,
then as long again while another process commits ``--rate`` new indicators a second, side by side.

Reports index build time and memory, events/s for IP/hash/identifier events and for prompt events, and the
ratio against evaluating the same patterns with stix2-matcher (measured on a sample, since stix2-matcher
evaluates every pattern for every observation: its cost per event grows with the indicator count).

LSH indicators (every 20th), ``--lsh families`` (default): each from its own prompt family (random text
over a 3,000-word vocabulary), as a real feed is: our converter gives one indicator per pattern (its id is
UUIDv5 over it), so near-duplicates of one family never become many indicators. Prompt events are half
light variants of a random family (one word changed: must match it) and half unrelated prompts.
``--lsh shared`` is the synthetic worst case kept from earlier runs: bands from fingerprint ``i % 2000`` with
``i % 20 == 19``, i.e. 100 distinct band sets each listed by n/2,000 indicators, and events that match about
n/5,000 indicators each (~200 at 1M). For prompt events the report also gives the matches per event, the
rate of fingerprinting alone, and the share of the time spent in Python's cyclic garbage collector (which
the Match objects wake).
"""

import argparse
import gc
import multiprocessing
import random
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from indicator_exchange.match.events import TrafficEvent
from indicator_exchange.match.matcher import CompiledIndicators
from indicator_exchange.stix.fingerprint import fingerprint_prompt, prompt_signatures
from indicator_exchange.stix.identifiers import hmac_identifier

KEY = b"bench-community-key"
NOW = datetime(2026, 11, 20, tzinfo=UTC)
VALID = {"valid_from": "2026-11-01T00:00:00Z", "valid_until": "2027-11-01T00:00:00Z"}


_LETTERS = random.Random(5)
VOCABULARY = sorted(
    {"".join(_LETTERS.choices("abcdefghijklmnopqrstuvwxyz", k=_LETTERS.randint(3, 10))) for _ in range(3000)}
)


def family_prompt(i: int) -> list[str]:
    """The words of prompt family ``i`` (deterministic, unrelated to the other families)."""
    return random.Random(i * 7919 + 17).choices(VOCABULARY, k=40)


def indicators(n: int, rng: random.Random, lsh: str) -> list[dict[str, Any]]:
    """Mixed kinds: 70% IPv4 addresses, 5% CIDRs, 5% IPv6 ranges, 10% prompt SHA, 5% HMAC ids, 5% LSH."""
    out = []
    if lsh == "shared":
        prompt_fps = [
            fingerprint_prompt(
                f"Solve step by step and show all reasoning inside thinking tags. Task {i}: "
                f"compute {i} times {i + 7} and explain every intermediate result.",
                key=KEY,
                key_id="b",
            )
            for i in range(2000)
        ]
    for i in range(n):
        roll = i % 20
        if roll < 14:
            pattern = f"[ipv4-addr:value = '{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}.{(i * 7) & 255}']"
        elif roll == 14:
            pattern = f"[ipv4-addr:value ISSUBSET '100.{i & 255}.{(i >> 8) & 255}.0/24']"
        elif roll == 15:
            pattern = f"[ipv6-addr:value ISSUBSET '2a00:1111:{i & 0xFFFF:x}::/48']"
        elif roll in (16, 17):
            pattern = f"[x-llm-prompt:hashes.'SHA-256' = '{uuid.UUID(int=i).hex * 2}']"
        elif roll == 18:
            digest = hmac_identifier(KEY, "email", f"user{i}@example.net")
            pattern = f"[x-hashed-identifier:identifier_type = 'email' AND x-hashed-identifier:value = '{digest}']"
        else:
            if lsh == "shared":
                fp = prompt_fps[i % len(prompt_fps)]
            else:
                fp = fingerprint_prompt(" ".join(family_prompt(i)), key=KEY, key_id="b")
            pattern = "[x-llm-prompt:lsh_bands[*] IN (" + ", ".join(f"'{b}'" for b in fp.lsh_bands) + ")]"
        out.append({"type": "indicator", "id": f"indicator--{uuid.UUID(int=i)}", "pattern": pattern, **VALID})
    return out


def events(
    n: int, rng: random.Random, *, prompts: bool, lsh: str = "shared", indicators: int = 0
) -> list[TrafficEvent]:
    at = NOW + timedelta(hours=1)
    if prompts and lsh == "families":
        out = []
        for k in range(n):
            if k % 2:
                words = [rng.choice(VOCABULARY) for _ in range(40)]  # unrelated
            else:
                words = family_prompt(rng.randrange(indicators // 20) * 20 + 19)
                words[rng.randrange(len(words))] = rng.choice(VOCABULARY)  # a light variant
            out.append(TrafficEvent(timestamp=at, prompt_text=" ".join(words)))
        return out
    if prompts:
        return [
            TrafficEvent(
                timestamp=at,
                prompt_text=f"Solve step by step and show all reasoning inside thinking "
                f"tags. Task {rng.randrange(4000)}: compute the product and explain it.",
            )
            for _ in range(n)
        ]
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out.append(
                TrafficEvent(
                    timestamp=at,
                    source_ip=f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                )
            )
        elif kind == 1:
            out.append(TrafficEvent(timestamp=at, prompt_sha256=uuid.UUID(int=rng.randrange(10**6)).hex * 2))
        else:
            out.append(TrafficEvent(timestamp=at, identifiers={"email": f"user{rng.randrange(10**6)}@example.net"}))
    return out


class GcClock:
    """A ``gc.callbacks`` entry adding up the time spent in collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _stored(obj: dict[str, Any]) -> Any:
    from indicator_exchange.stix.objects import inspect_object
    from indicator_exchange.store.objects import version_of

    return version_of(obj, inspect_object(obj))


def _stix(obj: dict[str, Any]) -> dict[str, Any]:
    stamp = "2026-11-01T00:00:00.000Z"
    return {"spec_version": "2.1", "created": stamp, "modified": stamp, "pattern_type": "stix", **obj}


def _commit(sessions: Any, collection_id: uuid.UUID, objs: list[dict[str, Any]]) -> None:
    from indicator_exchange.store import objects as store

    with sessions() as session:
        store.lock_collection(session, collection_id)
        now_us = int(time.time() * 1_000_000)
        store.write_versions(session, collection_id, [_stored(_stix(o)) for o in objs], now_us=now_us, added_by=None)
        session.commit()


def _fresh_ip(k: int) -> str:
    return f"250.{(k >> 16) & 255}.{(k >> 8) & 255}.{k & 255}"  # the bench's indicators never use 250/8


def _writer(url: str, collection_id: uuid.UUID, rate: float, seconds: float, written: Any, started: Any) -> None:
    """Commit one fresh indicator every 1/rate s for ``seconds`` (a separate process)."""
    from indicator_exchange.store.engine import make_engine, make_sessionmaker

    sessions = make_sessionmaker(make_engine(url, pool_size=1))
    _commit(sessions, collection_id, [])  # imports and connection warm before the clock starts
    started.set()
    ends = time.perf_counter() + seconds
    k = 100_000
    while time.perf_counter() < ends:
        ip = _fresh_ip(k)
        k += 1
        pattern = f"[ipv4-addr:value = '{ip}']"
        _commit(
            sessions,
            collection_id,
            [{"type": "indicator", "id": f"indicator--{uuid.uuid4()}", "pattern": pattern, **VALID}],
        )
        written.value += 1
        time.sleep(max(0.0, 1 / rate - 0.002))


def live(args: argparse.Namespace) -> None:
    """Commit-to-matchable and throughput with and without a stream of deltas (see the module docstring)."""
    import statistics
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' factories and PostgreSQL helpers
    from indicator_exchange.match.index import IndexConfig, MatchIndex
    from indicator_exchange.store import catalog, migrate
    from indicator_exchange.store.engine import make_engine, make_sessionmaker
    from tests.fixtures.factories import make_collection
    from tests.fixtures.postgres import drop_database, fresh_database

    name = f"ix_matchbench_{uuid.uuid4().hex[:8]}"
    url = fresh_database(ADMIN_URL, name)
    try:
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=4)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            collection_id = make_collection(session)
            session.commit()
        began = time.perf_counter()
        active = indicators(args.indicators, random.Random(1), "families")
        for start in range(0, len(active), 20_000):
            _commit(sessions, collection_id, active[start : start + 20_000])
        print(f"loaded {len(active):,} indicators into PostgreSQL in {time.perf_counter() - began:.0f} s")
        del active
        index = MatchIndex([collection_id], 4, IndexConfig(community_key=KEY, key_id="b"))

        def request(batch: list[tuple[int, TrafficEvent]]) -> list[Any]:
            with sessions() as session:
                collection = catalog.get_collection_by_id(session, collection_id)
                assert collection is not None
                generation = index.current(session, [collection], datetime.now(UTC))
                return list(generation.match_indexed(batch))

        at = datetime.now(UTC)
        probe = [(0, TrafficEvent(timestamp=at, source_ip="46.133.2.1"))]
        began = time.perf_counter()
        request(probe)
        full = time.perf_counter() - began
        print(f"full build at start (what every change cost before deltas): {full:.1f} s")

        warm, fresh = [], []
        for k in range(args.commits):
            began = time.perf_counter()
            request(probe)
            warm.append(time.perf_counter() - began)
            ip = _fresh_ip(k)
            _commit(
                sessions,
                collection_id,
                [
                    {
                        "type": "indicator",
                        "id": f"indicator--{uuid.uuid4()}",
                        "pattern": f"[ipv4-addr:value = '{ip}']",
                        **VALID,
                    }
                ],
            )
            committed = time.perf_counter()
            found = request([(0, TrafficEvent(timestamp=at, source_ip=ip))])
            fresh.append(time.perf_counter() - committed)
            assert found, f"{ip} committed but not matched"
            time.sleep(0.05)
        print(
            f"commit -> matched ({args.commits} commits, first request after each): "
            f"p50 {statistics.median(fresh) * 1000:.1f} ms, max {max(fresh) * 1000:.1f} ms; "
            f"warm request p50 {statistics.median(warm) * 1000:.1f} ms; "
            f"{index.refreshes} delta refreshes, {index.full_builds} full build(s)"
        )

        batch = list(enumerate(events(args.batch, random.Random(2), prompts=False)))

        def throughput(seconds: float) -> tuple[float, float]:
            """Events per wall second and per CPU second of this thread (what a loaded machine distorts less)."""
            served = 0
            cpu = time.thread_time()
            ends = time.perf_counter() + seconds
            while time.perf_counter() < ends:
                request(batch)
                served += len(batch)
            return served / seconds, served / (time.thread_time() - cpu)

        with sessions() as session:
            elsewhere = make_collection(session, title="not matched")
            session.commit()
        spawn = multiprocessing.get_context("spawn")

        def with_writer(target: uuid.UUID) -> tuple[tuple[float, float], int, int, float]:
            """Throughput while another process commits to ``target`` (its CPU is not the matcher's, as a
            detector posting to the server is not), with the commits, refreshes and refresh CPU it caused."""
            written, started = spawn.Value("i", 0), spawn.Event()
            writer = spawn.Process(target=_writer, args=(url, target, args.rate, args.seconds, written, started))
            writer.start()
            started.wait()
            refreshes, cpu = index.refreshes, index.refresh_cpu_seconds
            rates = throughput(args.seconds)
            writer.join()
            return rates, written.value, index.refreshes - refreshes, index.refresh_cpu_seconds - cpu

        quiet = throughput(args.seconds)
        control, _, _, _ = with_writer(elsewhere)
        busy, written, refreshes, refresh_cpu = with_writer(collection_id)
        generation = index.generation
        assert generation is not None
        print(
            f"throughput ({args.batch}-event requests; events/s, then per CPU second of the matching thread): "
            f"no writes {quiet[0]:,.0f} / {quiet[1]:,.0f}; another process committing {args.rate:.0f}/s to another "
            f"collection {control[0]:,.0f} / {control[1]:,.0f}; the same committing to the matched collection "
            f"{busy[0]:,.0f} / {busy[1]:,.0f} ({written} indicators, {refreshes} delta refreshes, "
            f"{refresh_cpu / max(1, refreshes) * 1e3:.1f} ms CPU each)"
        )
        print(
            f"ratio with deltas / without (same writer, other collection): {busy[0] / control[0]:.2f} wall, "
            f"{busy[1] / control[1]:.2f} CPU; {len(generation.segments)} segment(s) holding "
            f"{generation.overlay_size} indicators, {index.full_builds} full build(s)"
        )
        engine.dispose()
    finally:
        drop_database(ADMIN_URL, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--lsh", choices=["families", "shared"], default="families", help="LSH workload")
    parser.add_argument("--live", action="store_true", help="The live index on PostgreSQL (see above).")
    parser.add_argument("--seconds", type=float, default=20, help="--live: seconds per throughput run.")
    parser.add_argument("--rate", type=float, default=20, help="--live: indicators committed per second.")
    parser.add_argument("--commits", type=int, default=30, help="--live: commits timed to their first match.")
    parser.add_argument("--batch", type=int, default=1000, help="--live: events per match request.")
    args = parser.parse_args()
    if args.live:
        live(args)
        return
    rng = random.Random(1)
    active = indicators(args.indicators, rng, args.lsh)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    compiled = CompiledIndicators.build(active, community_key=KEY, key_id="b", now=NOW)
    build = time.perf_counter() - began
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(
        f"index build: {len(active):,} indicators in {build:.1f} s ({len(active) / build:,.0f}/s), "
        f"+{grown:,.0f} MiB peak RSS, {len(compiled.skipped)} skipped"
    )
    simple = events(args.events, rng, prompts=False)
    began = time.perf_counter()
    hits = sum(len(compiled.match_one(e, i)) for i, e in enumerate(simple))
    rate_simple = len(simple) / (time.perf_counter() - began)
    print(f"IP / hash / identifier events: {rate_simple:,.0f} events/s on one core ({hits} matches)")
    prompts = events(max(2000, args.events // 20), rng, prompts=True, lsh=args.lsh, indicators=args.indicators)
    collecting = GcClock()
    gc.callbacks.append(collecting)
    began = time.perf_counter()
    hits = sum(len(compiled.match_one(e, i)) for i, e in enumerate(prompts))
    elapsed = time.perf_counter() - began
    gc.callbacks.remove(collecting)
    rate_prompts = len(prompts) / elapsed
    began = time.perf_counter()
    for e in prompts:
        prompt_signatures(e.prompt_text or "", key=KEY)
    rate_fingerprints = len(prompts) / (time.perf_counter() - began)
    print(
        f"events carrying a prompt ({args.lsh}): {rate_prompts:,.0f} events/s on one core ({hits} matches, "
        f"{hits / len(prompts):,.1f} per event; fingerprinting alone {rate_fingerprints:,.0f}/s; "
        f"{collecting.seconds / elapsed:.0%} of the time in the garbage collector)"
    )

    from stix2matcher.matcher import match as reference

    sample = active[:: max(1, len(active) // 2000)][:2000]
    event = simple[0]
    observed = [
        {
            "type": "bundle",
            "id": f"bundle--{uuid.uuid4()}",
            "objects": [
                {
                    "type": "observed-data",
                    "id": f"observed-data--{uuid.uuid4()}",
                    "spec_version": "2.1",
                    "first_observed": "2026-11-20T01:00:00Z",
                    "last_observed": "2026-11-20T01:00:00Z",
                    "number_observed": 1,
                    "created": "2026-11-20T01:00:00Z",
                    "modified": "2026-11-20T01:00:00Z",
                    "object_refs": ["ipv4-addr--11111111-1111-4111-8111-111111111111"],
                },
                {
                    "type": "ipv4-addr",
                    "spec_version": "2.1",
                    "id": "ipv4-addr--11111111-1111-4111-8111-111111111111",
                    "value": event.source_ip,
                },
            ],
        }
    ]
    began = time.perf_counter()
    for indicator in sample:
        reference(indicator["pattern"], observed, stix_version="2.1")
    per_pattern = (time.perf_counter() - began) / len(sample)
    reference_rate = 1 / (per_pattern * len(active))
    print(
        f"stix2-matcher: {per_pattern * 1e6:,.0f} µs per (pattern, event) on a {len(sample)}-pattern sample, so "
        f"~{reference_rate:.4f} events/s against {len(active):,} indicators (extrapolated); "
        f"ours is ~{rate_simple / reference_rate:,.0f}x faster"
    )


if __name__ == "__main__":
    main()
