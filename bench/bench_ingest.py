"""Detector ingestion end to end: NDJSON detections POSTed to /api/v1/detections of a live server on
PostgreSQL (2 workers), per kind and mixed; detections/s including conversion, dedup and the writes.

    python bench/bench_ingest.py [--n 20000] [--batch 1000] [--clients 1]

With ``--clients 2`` two connections post batches side by side (one per server worker), as two detectors
or a detector with two senders would; conversion then runs on both cores and only the writes queue on the
collection lock.
"""

import argparse
import json
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import start_ours

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = {"first_seen": (NOW - timedelta(days=1)).isoformat(), "last_seen": NOW.isoformat(), "confidence": 60}
TEMPLATE = (
    "You are a meticulous expert. Think step by step and write your complete chain of reasoning inside "
    "<thinking> tags, then give only the final answer inside <answer> tags. Task {i}: {task}"
)


def detection(kind: str, i: int, rng: random.Random) -> dict[str, Any]:
    cluster = {"cluster": f"hydra-{i % 50}"}
    if kind == "proxy_ip":
        return {
            "kind": kind,
            "detector": "proxy-graph",
            "value": f"46.154.{i >> 8 & 255}.{i & 255}",  # an ordinary /16 on no warninglist (10/8 is refused)
            "proxy_kind": "residential",
            "tlp": "amber",
            **WINDOW,
            **cluster,
        }
    if kind == "prompt_signature":
        task = rng.choice(["prove a lemma", "grade an essay", "fix a failing test", "call the search tool"])
        return {
            "kind": kind,
            "detector": "prompt-cluster",
            "prompt_text": TEMPLATE.format(i=i, task=task),
            "capability": "cot-elicitation",
            "tlp": "amber",
            **WINDOW,
            **cluster,
        }
    return {
        "kind": kind,
        "detector": "payments-risk",
        "tlp": "amber+strict",
        **WINDOW,
        **cluster,
        "identifiers": [{"type": "email", "value": f"user{i}@mailbox.example"}],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=1, help="concurrent connections posting batches")
    args = parser.parse_args()
    rng = random.Random(3)
    server = start_ours("pg", Path(tempfile.mkdtemp()), 2)
    try:
        clients = [httpx.Client(base_url=server.base, auth=server.auth, timeout=600) for _ in range(args.clients)]
        offset = 0
        for kind in ("proxy_ip", "prompt_signature", "account_pattern", "mixed"):
            kinds = ["proxy_ip", "prompt_signature", "account_pattern"] if kind == "mixed" else [kind]
            lines = [json.dumps(detection(kinds[i % len(kinds)], offset + i, rng)) for i in range(args.n)]
            offset += args.n
            bodies = ["\n".join(lines[start : start + args.batch]) for start in range(0, len(lines), args.batch)]

            def post(worker: int, bodies: list[str] = bodies) -> int:
                created = 0
                for body in bodies[worker :: args.clients]:
                    response = clients[worker].post(
                        "/api/v1/detections",
                        params={"collection": server.collection_id},
                        content=body,
                        headers={"Content-Type": "application/x-ndjson"},
                    )
                    response.raise_for_status()
                    created += int(response.json()["summary"]["created"])
                return created

            began = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                created = sum(pool.map(post, range(args.clients)))
            elapsed = time.perf_counter() - began
            print(
                f"{kind:>17}: {args.n / elapsed:,.0f} detections/s ({created:,} created, {elapsed:.1f} s, "
                f"{args.clients} client(s))",
                flush=True,
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
