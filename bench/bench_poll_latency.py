"""Per-request latency of TAXII polls through a live single-worker ``serve`` on PostgreSQL: small pages (the fixed
cost of a request: edge, authentication, audit, paging), full pages, and discovery.

    python bench/bench_poll_latency.py [--objects 5000] [--small 1500] [--tag NAME]

Before/after for a change on the request path: run it in a checkout of each revision (for example
``git worktree add /tmp/base REV`` and ``cd /tmp/base && PYTHONPATH=/tmp/base python bench/bench_poll_latency.py``
with this venv's Python), alternating runs, and compare the medians. Needs PostgreSQL on 127.0.0.1:5432.
"""

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope
from tests.fixtures.factories import envelope, make_collection, make_indicator, make_key, objects_url
from tests.fixtures.live_server import live_server
from tests.fixtures.postgres import drop_database, fresh_database

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _timed(client: httpx.Client, url: str, runs: int, **kwargs: object) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(url, **kwargs)  # type: ignore[arg-type]
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--small", type=int, default=1500, help="Polls of limit=10.")
    parser.add_argument("--tag", default="this checkout")
    args = parser.parse_args()
    name = f"ix_pollbench_{uuid.uuid4().hex[:8]}"
    url = fresh_database(ADMIN_URL, name)
    try:
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=1)
        with session_scope(make_sessionmaker(engine)) as session:
            collection = make_collection(session)
            key = make_key(session, "lab", read=[collection], write=[collection])
        engine.dispose()
        with live_server(url) as server, httpx.Client(base_url=server.base, timeout=30) as client:
            for start in range(0, args.objects, 1000):
                batch = [make_indicator(n) for n in range(start, min(start + 1000, args.objects))]
                answer = client.post(objects_url(collection), headers=key.post, json=envelope(*batch))
                assert answer.status_code == 202, answer.text
            _timed(client, objects_url(collection), 50, headers=key.basic, params={"limit": 10})  # warm up
            small = _timed(client, objects_url(collection), args.small, headers=key.basic, params={"limit": 10})
            full = _timed(client, objects_url(collection), 60, headers=key.basic, params={"limit": 1000})
            discovery = _timed(client, "/taxii2/", 500, headers=key.basic)
    finally:
        drop_database(ADMIN_URL, name)
    print(
        f"{args.tag}: limit=10 p50 {statistics.median(small) * 1000:.2f} ms | "
        f"limit=1000 p50 {statistics.median(full) * 1000:.1f} ms | "
        f"discovery p50 {statistics.median(discovery) * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
