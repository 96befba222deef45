"""Matching throughput against a large active indicator set (mixed kinds), on one core.

    python bench/bench_match.py [--indicators 1000000] [--events 200000] [--lsh families|shared]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indicators", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--lsh", choices=["families", "shared"], default="families", help="LSH workload")
    args = parser.parse_args()
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
