"""Scale-out figures, every comparison side by side in one run (docs/scaling.md):

1. 1, 2 and 4 `serve` instances (2 workers each) behind haproxy: ingest and poll throughput;
2. PgBouncer (transaction mode) against direct, one instance: ingest and a full poll;
3. ingest on the primary alone, with pollers on the primary, and with the pollers on a streaming replica;
4. eight concurrent pollers against one sequential poller, both timed the same way (wall clock, JSON parsed);
5. the server's CPU per 1,000 objects polled (all its processes, /proc), read-ahead on and off.

    python bench/bench_scale.py [--objects 20000] [--only instances,pooler,replica,pollers,cpu]

Needs PostgreSQL on 127.0.0.1:5432, and haproxy, pgbouncer and the PostgreSQL server binaries (`make
system-deps`). On this machine's 2 cores more instances cannot add throughput: they share the same cores.
"""

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url
from tests.fixtures.live_server import live_server
from tests.fixtures.postgres import cluster, drop_database, fresh_database
from tests.fixtures.scale import Pooler, Replica, database_on, haproxy, instances, pgbouncer, wait_replayed

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH = 500
NO_LIMITS = {"IX_STATISTICS_INTERVAL_SECONDS": "2"}  # live_server turns the rate limits off


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Feed:
    def __init__(self, url: str) -> None:
        engine = make_engine(url, pool_size=1)
        with session_scope(make_sessionmaker(engine)) as session:
            self.collection = make_collection(session)
            self.key: Key = make_key(session, "bench", kind="detector", read=[self.collection], write=[self.collection])
        engine.dispose()
        self.path = objects_url(self.collection)


@contextlib.contextmanager
def database(admin_url: str = ADMIN_URL) -> Iterator[str]:
    name = f"ix_scalebench_{uuid.uuid4().hex[:8]}"
    url = fresh_database(admin_url, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_database(admin_url, name)


def ingest(base: str, feed: Feed, first: int, count: int, clients: int = 2) -> dict[str, float]:
    """``count`` new indicators in envelopes of BATCH from ``clients`` concurrent connections."""
    bodies = [
        orjson.dumps(envelope(*(make_indicator(n) for n in range(start, min(start + BATCH, first + count)))))
        for start in range(first, first + count, BATCH)
    ]
    lock = threading.Lock()

    def sender() -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            while True:
                with lock:
                    if not bodies:
                        return
                    body = bodies.pop()
                answer = client.post(feed.path, content=body, headers=feed.key.post)
                assert answer.status_code == 202, answer.text

    began = time.perf_counter()
    run_threads(sender, clients)
    elapsed = time.perf_counter() - began
    return {"objects": count, "rate": round(count / elapsed, 1)}


REQUEST_SECONDS: list[float] = []  # time spent waiting for answers, parsing excluded (bench/run.py's way)


def full_poll(
    base: str, feed: Feed, headers: dict[str, str] | None = None, parse: Callable[[bytes], Any] = orjson.loads
) -> int:
    """Page through the whole collection (limit 1000, ``next``), parsing every page; the objects received."""
    received = 0
    params: dict[str, str | int] = {"limit": 1000}
    with httpx.Client(base_url=base, timeout=120) as client:
        while True:
            began = time.perf_counter()
            answer = client.get(feed.path, params=params, headers={**feed.key.basic, **(headers or {})})
            REQUEST_SECONDS.append(time.perf_counter() - began)
            assert answer.status_code == 200, answer.text
            body = parse(answer.content)
            received += len(body.get("objects", []))
            if not body.get("more"):
                return received
            params = {"limit": 1000, "next": body["next"]}


def pollers(
    base: str,
    feed: Feed,
    count: int,
    *,
    headers: dict[str, str] | None = None,
    parse: Callable[[bytes], Any] = orjson.loads,
) -> dict[str, float]:
    """``count`` concurrent full polls; objects per second, all together, wall clock (and, for one poller,
    per second of request time alone, as bench/run.py's full poll counts it)."""
    totals: list[int] = []
    REQUEST_SECONDS.clear()

    def one() -> None:
        totals.append(full_poll(base, feed, headers, parse))

    began = time.perf_counter()
    run_threads(one, count)
    elapsed = time.perf_counter() - began
    figures = {"pollers": count, "objects": sum(totals), "rate": round(sum(totals) / elapsed, 1)}
    if count == 1:
        figures["rate_request_time_only"] = round(sum(totals) / sum(REQUEST_SECONDS), 1)
    return figures


def run_threads(target: Callable[[], None], count: int) -> None:
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of ``pid`` and its children (uvicorn's workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# ------------------------------------------------------------------------------------------------- sections


def bench_instances(objects: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for count in (1, 2, 4):
        with database() as url:
            feed = Feed(url)
            with instances(url, count, workers=2, env=NO_LIMITS) as servers, haproxy(servers) as balancer:
                log(f"instances={count}: ingest {objects}")
                put = ingest(balancer.base, feed, 0, objects, clients=4)
                log(f"instances={count}: 4 pollers")
                got = pollers(balancer.base, feed, 4)
            figures[str(count)] = {"ingest": put["rate"], "poll_4": got["rate"]}
    return figures


def pooler_options() -> dict[str, Any]:
    """The fixture's pgbouncer as configured before 2026-12-05 with IX_BENCH_PGBOUNCER=tcp (TCP to the server,
    pkt_buf 4096), for before/after runs; else as the fixture configures it now."""
    return {"host": "127.0.0.1", "pkt_buf": 4096} if os.environ.get("IX_BENCH_PGBOUNCER") == "tcp" else {}


def bench_pooler(objects: int) -> dict[str, Any]:
    """Direct against PgBouncer, two rounds in opposite orders (the machine's load drifts; the second run of a
    round met a warmer server), each on a fresh database; the ratios are of the sums over both rounds."""
    rounds: list[dict[str, dict[str, float]]] = []
    with pgbouncer(5432, pool_size=20, **pooler_options()) as pooler:
        for order in (("direct", "pgbouncer"), ("pgbouncer", "direct")):
            figures: dict[str, dict[str, float]] = {}
            for label in order:
                with contextlib.ExitStack() as stack:
                    url = stack.enter_context(database())  # a fresh database each: equal starting points
                    pooled = pooler.url(url.rsplit("/", 1)[1])
                    target, extra = (url, {}) if label == "direct" else (pooled, {"IX_DIRECT_DATABASE_URL": url})
                    feed = Feed(url)
                    server = stack.enter_context(live_server(target, workers=2, env={**NO_LIMITS, **extra}))
                    log(f"{label}: ingest {objects}")
                    put = ingest(server.base, feed, 0, objects)
                    full_poll(server.base, feed)  # warm
                    got = pollers(server.base, feed, 1)
                figures[label] = {"ingest": put["rate"], "poll": got["rate"], "load": os.getloadavg()[0]}
            rounds.append(figures)
    result: dict[str, Any] = {"rounds": rounds}
    for metric in ("ingest", "poll"):
        pooled_sum = sum(r["pgbouncer"][metric] for r in rounds)
        result[f"{metric}_ratio"] = round(pooled_sum / sum(r["direct"][metric] for r in rounds), 3)
    return result


def _transactions(url: str) -> int:
    """Transactions committed and rolled back in ``url``'s database so far (pg_stat_database; every autocommit
    statement is one); read on a connection of its own, after a flush of this backend's counters."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _pooler_totals(pooler: Pooler, name: str) -> dict[str, int]:
    """pgbouncer's SHOW STATS counters for database ``name`` (transactions, queries, bytes each way)."""
    with psycopg.connect(pooler.url("pgbouncer"), autocommit=True, prepare_threshold=None) as conn:
        cursor = conn.execute(b"SHOW STATS")
        columns = [column.name for column in cursor.description or []]
        for row in cursor.fetchall():
            if row[0] == name:
                found = dict(zip(columns, row, strict=True))
                return {
                    key: int(found[key])
                    for key in ("total_xact_count", "total_query_count", "total_received", "total_sent")
                }
    return {"total_xact_count": 0, "total_query_count": 0, "total_received": 0, "total_sent": 0}


def bench_pooler_probe(objects: int) -> dict[str, Any]:
    """Per page of a full poll (limit 1000), direct against PgBouncer: transactions in the database, queries and
    bytes pgbouncer relayed, CPU seconds of pgbouncer, of the server and of PostgreSQL's backends (all of
    PostgreSQL's processes, /proc, so other users of the shared server count too: see the load)."""
    figures: dict[str, Any] = {}
    with pgbouncer(5432, pool_size=20, **pooler_options()) as pooler:
        for label in ("direct", "pgbouncer", "direct_again", "pgbouncer_again"):
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(database())
                name = url.rsplit("/", 1)[1]
                pooled = pooler.url(name)
                direct = label.startswith("direct")
                target, extra = (url, {}) if direct else (pooled, {"IX_DIRECT_DATABASE_URL": url})
                feed = Feed(url)
                server = stack.enter_context(live_server(target, workers=2, env={**NO_LIMITS, **extra}))
                ingest(server.base, feed, 0, objects)
                full_poll(server.base, feed)  # warm
                time.sleep(11)  # backends flush their pg_stat_database counters within 10 s of going idle
                xacts, relayed = _transactions(url), _pooler_totals(pooler, name)
                cpu = (cpu_seconds(pooler.process.pid), cpu_seconds(server.pid))
                began = time.perf_counter()
                polls, received = 3, 0
                for _ in range(polls):
                    received += full_poll(server.base, feed)
                elapsed = time.perf_counter() - began
                used = (cpu_seconds(pooler.process.pid) - cpu[0], cpu_seconds(server.pid) - cpu[1])
                time.sleep(11)
                pages = polls * -(-objects // 1000)
                after = _pooler_totals(pooler, name)
                figures[label] = {
                    "rate": round(received / elapsed, 1),
                    "transactions_per_page": round((_transactions(url) - xacts - 2) / pages, 2),
                    "pooler_transactions_per_page": round(
                        (after["total_xact_count"] - relayed["total_xact_count"]) / pages, 2
                    ),
                    "pooler_queries_per_page": round(
                        (after["total_query_count"] - relayed["total_query_count"]) / pages, 2
                    ),
                    "pooler_kib_sent_per_page": round((after["total_sent"] - relayed["total_sent"]) / pages / 1024, 1),
                    "pgbouncer_cpu_s_per_100k": round(used[0] * 100_000 / received, 2),
                    "server_cpu_s_per_100k": round(used[1] * 100_000 / received, 2),
                    "load": os.getloadavg()[0],
                }
                log(f"{label}: {figures[label]}")
    return figures


def bench_replica(objects: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with cluster() as primary:
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ix")
        url = database_on(primary, "ix")
        migrate.upgrade(url)
        replica = Replica(primary)
        try:
            replica.start()
            feed = Feed(url)
            replica_env = {
                **NO_LIMITS,
                "IX_READ_REPLICA_URLS": database_on(replica, "ix"),
                "IX_REPLICA_MAX_LAG_SECONDS": "30",
            }
            with (
                live_server(url, workers=2, env=NO_LIMITS) as writer,
                live_server(url, workers=1, env=NO_LIMITS) as on_primary,
                live_server(url, workers=1, env=replica_env) as on_replica,
            ):
                ingest(writer.base, feed, 0, objects)  # what the pollers read
                wait_replayed(url, database_on(replica, "ix"))
                first = objects
                for label, reader in (
                    ("alone", None),
                    ("polls_on_primary", on_primary),
                    ("polls_on_replica", on_replica),
                ):
                    stop = threading.Event()
                    polled: list[int] = []

                    def poll_loop(base: str, stop: threading.Event = stop, polled: list[int] = polled) -> None:
                        while not stop.is_set():
                            polled.append(full_poll(base, feed))

                    threads = (
                        []
                        if reader is None
                        else [threading.Thread(target=poll_loop, args=(reader.base,)) for _ in range(2)]
                    )
                    for thread in threads:
                        thread.start()
                    log(f"replica: ingest {objects} ({label})")
                    put = ingest(writer.base, feed, first, objects)
                    stop.set()
                    for thread in threads:
                        thread.join()
                    first += objects
                    figures[label] = {"ingest": put["rate"], "polled_objects": sum(polled)}
        finally:
            replica.remove()
    alone = figures["alone"]["ingest"]
    for label in ("polls_on_primary", "polls_on_replica"):
        figures[label]["ingest_vs_alone"] = round(figures[label]["ingest"] / alone, 3)
    return figures


def bench_pollers(objects: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with database() as url:
        feed = Feed(url)
        with live_server(url, workers=2, env=NO_LIMITS) as server:
            ingest(server.base, feed, 0, objects)
            full_poll(server.base, feed)
            for round_no in range(2):  # alternating, twice
                for count in (1, 8):
                    for parser, parse in (("orjson", orjson.loads), ("json", json.loads)):
                        got = pollers(server.base, feed, count, parse=parse)
                        figures.setdefault(f"{count}_{parser}", []).append(got["rate"])
                        if count == 1:
                            figures.setdefault(f"1_{parser}_request_time_only", []).append(
                                got["rate_request_time_only"]
                            )
                        log(f"pollers={count} {parser} round {round_no}: {got}")
    for parser in ("orjson", "json"):
        figures[f"ratio_8_vs_1_{parser}"] = round(max(figures[f"8_{parser}"]) / max(figures[f"1_{parser}"]), 3)
        figures[f"ratio_8_{parser}_vs_1_request_time_only"] = round(
            max(figures[f"8_{parser}"]) / max(figures[f"1_{parser}_request_time_only"]), 3
        )
    return figures


def bench_cpu(objects: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with database() as url:
        feed = Feed(url)
        for label, pages in (("read_ahead_on", "8"), ("read_ahead_off", "0")):
            with live_server(url, workers=1, env={**NO_LIMITS, "IX_READ_AHEAD_PAGES": pages}) as server:
                if label == "read_ahead_on":
                    ingest(server.base, feed, 0, objects)
                full_poll(server.base, feed)
                time.sleep(1)
                before, began = cpu_seconds(server.pid), time.perf_counter()
                received = sum(full_poll(server.base, feed) for _ in range(3))
                used, elapsed = cpu_seconds(server.pid) - before, time.perf_counter() - began
            figures[label] = {
                "cpu_ms_per_1000": round(used * 1000 / (received / 1000), 2),
                "rate": round(received / elapsed, 1),
            }
    return figures


SECTIONS: dict[str, Callable[[int], dict[str, Any]]] = {
    "instances": bench_instances,
    "pooler": bench_pooler,
    "pooler_probe": bench_pooler_probe,
    "replica": bench_replica,
    "pollers": bench_pollers,
    "cpu": bench_cpu,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--only", default=",".join(SECTIONS), help="Comma-separated sections to run.")
    args = parser.parse_args()
    results: dict[str, Any] = {"objects": args.objects, "load": os.getloadavg()[0]}
    for name in args.only.split(","):
        log(f"section {name}")
        results[name] = SECTIONS[name](args.objects)
        print(json.dumps({name: results[name]}), flush=True)
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
