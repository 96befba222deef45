"""Time to share: a detection posted at lab A until lab B's ``POST /api/v1/match`` first matches it.

    python bench/bench_time_to_share.py [--indicators 100000] [--seconds 60] [--rate 2] [--subscribers 200]

Two single-worker ``serve`` instances on two PostgreSQL databases (127.0.0.1:5432). B follows A with
``indicator-exchange sync --follow`` (A offers its stream) and B's matcher is preloaded with ``--indicators``
indicators (one full build before the clock starts). For ``--seconds``, detections of fresh proxy IPs are posted
at A's ``POST /api/v1/detections`` at ``--rate`` per second while a client at B sends traffic from every IP
posted so far and not yet matched, back to back; a sample is the time from A's ``200`` to the first B answer
that matched the IP. Phases:

1. ``plain``: nothing else connected to A;
2. ``subscribers``: ``--subscribers`` stream subscribers connected to A (each receives every detection; their
   own delivery delay, A's 200 to the event, is reported too);
3. ``kill -9``: the follower is killed with SIGKILL a third of the way through and restarted at once.

After each phase every object version of A's collection must be at B exactly once (checked by (id, version),
and the follower's stored count). Prints one table; the machine's load is printed with it.
"""

import argparse
import asyncio
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indicator_exchange.store import migrate, sources
from indicator_exchange.store.engine import make_engine, make_sessionmaker, session_scope
from indicator_exchange.store.models import ObjectVersion
from indicator_exchange.sync import service as sync
from tests.fixtures.factories import Key, make_collection, make_indicator, make_key
from tests.fixtures.live_server import IX, LiveServer, live_server
from tests.fixtures.peers import seed_local
from tests.fixtures.postgres import drop_database, fresh_database

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRET_ENV = "IX_BENCH_TTS_SECRET"


@dataclass
class Lab:
    server: LiveServer
    url: str
    collection: uuid.UUID
    key: Key


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    unmatched: int = 0
    subscriber_latencies: list[float] = field(default_factory=list)
    at_b: list[float] = field(default_factory=list)  # A's 200 to the object's event on B's own stream
    match_seconds: list[float] = field(default_factory=list)  # duration of each match request at B
    match_requests: int = 0
    exact: str = "-"
    # Where the time goes, per IP (wall clock, one machine): A's 200 -> B's date_added (the follower's write) and
    # B's date_added -> the first match at B.
    posted_wall: dict[str, float] = field(default_factory=dict)
    matched_wall: dict[str, float] = field(default_factory=dict)
    to_b_store: list[float] = field(default_factory=list)
    store_to_match: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def fresh_ip(n: int) -> str:
    # 45.1.0.0 upwards: public (10/8 is on the private-use warninglist and would be refused), never preloaded.
    return str(ipaddress.IPv4Address(0x2D010000 + n))


def detection(ip: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "kind": "proxy_ip",
        "detector": "bench",
        "value": ip,
        "proxy_kind": "residential",
        "tlp": "green",
        "first_seen": (now - timedelta(minutes=5)).isoformat(),
        "last_seen": now.isoformat(),
        "confidence": 80,
    }


def added_at(url: str, collection: uuid.UUID) -> dict[str, float]:
    """The first ``date_added`` (wall clock, s) of each fresh IP's indicator in a collection."""
    engine = make_engine(url, pool_size=1)
    found: dict[str, float] = {}
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(ObjectVersion.date_added, ObjectVersion.raw).where(
                    ObjectVersion.collection_id == collection, ObjectVersion.stix_type == "indicator"
                )
            ).all()
    finally:
        engine.dispose()
    for date_added, raw in rows:
        pattern = str(orjson.loads(raw).get("pattern", ""))
        if "'45." in pattern:
            ip = pattern.split("'")[1]
            found[ip] = min(found.get(ip, float("inf")), date_added / 1e6)
    return found


def decompose(phase: Phase, b_url: str, collection: uuid.UUID) -> None:
    """Split each sample at B's write: A's 200 -> stored at B, stored at B -> first match at B."""
    stored = added_at(b_url, collection)
    for ip, posted in phase.posted_wall.items():
        if ip in stored:
            phase.to_b_store.append(stored[ip] - posted)
            if ip in phase.matched_wall:
                phase.store_to_match.append(phase.matched_wall[ip] - stored[ip])


def row_count(url: str, collection: uuid.UUID) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            found = session.execute(select(func.count()).where(ObjectVersion.collection_id == collection)).scalar()
            return int(found or 0)
    finally:
        engine.dispose()


def ids_of(url: str, collection: uuid.UUID) -> set[tuple[str, int]]:
    engine = make_engine(url, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(ObjectVersion.stix_id, ObjectVersion.version).where(ObjectVersion.collection_id == collection)
            ).all()
            return {(r[0], r[1]) for r in rows}
    finally:
        engine.dispose()


class Follower:
    def __init__(self, database_url: str, secret: str, log: Path) -> None:
        self.env = dict(os.environ, IX_DATABASE_URL=database_url, **{SECRET_ENV: secret})
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([IX, "sync", "--follow"], env=self.env, stderr=out, stdout=out)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def subscribers(
    a: Lab, key: Key, count: int, phase: Phase, posted: dict[str, float], into: list[float] | None = None
) -> Iterator[None]:
    """``count`` stream subscribers on ``a``, on their own event loop; each notes when an IP's indicator arrives
    (in ``into``, default the phase's subscriber latencies)."""
    noted = phase.subscriber_latencies if into is None else into
    if count == 0:
        yield
        return
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    connected = threading.Semaphore(0)
    url = f"{a.server.base}/api/v1/collections/{a.collection}/stream"

    async def one(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", url, headers=key.basic) as response:
            assert response.status_code == 200
            connected.release()
            async for line in response.aiter_lines():
                if line.startswith('data: {"objects"'):
                    now = time.monotonic()
                    for obj in orjson.loads(line[6:])["objects"]:
                        pattern = str(obj.get("pattern", ""))
                        for ip, at in list(posted.items()):
                            if f"'{ip}'" in pattern:
                                noted.append(now - at)

    async def run() -> None:
        limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
        async with httpx.AsyncClient(timeout=httpx.Timeout(None, connect=30), limits=limits) as client:
            tasks = [asyncio.create_task(one(client)) for _ in range(count)]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    for _ in range(count):
        assert connected.acquire(timeout=60), "the subscribers did not connect"
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def run_phase(
    phase: Phase,
    a: Lab,
    b: Lab,
    detector: Key,
    seconds: float,
    rate: float,
    start: int,
    follower: Follower | None = None,
    subscriber_key: Key | None = None,
    subscriber_count: int = 0,
) -> int:
    """Post ``seconds * rate`` detections at A from IP number ``start``; returns the next IP number."""
    posted: dict[str, float] = {}  # ip -> monotonic time of A's 200
    matched: set[str] = set()
    lock = threading.Lock()
    done = threading.Event()
    total = int(seconds * rate)

    def matcher() -> None:
        with httpx.Client(base_url=b.server.base, timeout=30) as client:
            while not done.is_set() or len(matched) < len(posted):
                with lock:
                    pending = [ip for ip in posted if ip not in matched]
                if not pending:
                    time.sleep(0.005)
                    if done.is_set() and time.monotonic() > deadline:
                        return
                    continue
                now = datetime.now(UTC).isoformat()
                events = [{"timestamp": now, "event_id": ip, "source_ip": ip} for ip in pending]
                sent = time.monotonic()
                answer = client.post(
                    "/api/v1/match", json=events, headers={"Authorization": b.key.bearer["Authorization"]}
                )
                at = time.monotonic()
                phase.match_seconds.append(at - sent)
                phase.match_requests += 1
                assert answer.status_code == 200, answer.text
                for match in answer.json()["matches"]:
                    ip = pending[match["event_index"]]
                    with lock:
                        if ip not in matched:
                            matched.add(ip)
                            phase.latencies.append(at - posted[ip])
                            phase.matched_wall[ip] = time.time()
                if done.is_set() and time.monotonic() > deadline:
                    return

    deadline = float("inf")
    with ExitStack() as stack:
        if subscriber_key is not None:
            stack.enter_context(subscribers(a, subscriber_key, subscriber_count, phase, posted))
        stack.enter_context(subscribers(b, b.key, 1, phase, posted, into=phase.at_b))
        thread = threading.Thread(target=matcher, daemon=True)
        thread.start()
        with httpx.Client(base_url=a.server.base, timeout=30) as client:
            began = time.monotonic()
            for n in range(total):
                due = began + n / rate
                time.sleep(max(0.0, due - time.monotonic()))
                if follower is not None and n == total // 3:
                    follower.kill()
                    follower.start()
                ip = fresh_ip(start + n)
                answer = client.post(
                    "/api/v1/detections",
                    json=[detection(ip)],
                    headers={"Authorization": detector.bearer["Authorization"]},
                )
                assert answer.status_code == 200, answer.text
                with lock:
                    posted[ip] = time.monotonic()
                    phase.posted_wall[ip] = time.time()
        deadline = time.monotonic() + 30  # the last detections get 30 s to be matched
        done.set()
        thread.join(40)
        phase.unmatched = len(posted) - len(matched)
    return start + total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indicators", type=int, default=100_000, help="Indicators preloaded in B's matcher.")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=2.0, help="Detections per second posted at A.")
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--kill-seconds", type=float, default=30.0, help="Length of the kill -9 phase.")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    names = (f"ix_tts_a_{tag}", f"ix_tts_b_{tag}")
    a_url, b_url = (fresh_database(ADMIN_URL, name) for name in names)
    workdir = Path(f"/tmp/ix-tts-{tag}")
    workdir.mkdir()
    try:
        for url in (a_url, b_url):
            migrate.upgrade(url)
        a_sessions = make_sessionmaker(make_engine(a_url, pool_size=1))
        with session_scope(a_sessions) as session:
            a_collection = make_collection(session, root="lab-a", title="detections")
            detector = make_key(
                session, "detector", kind="detector", clearance="red", read=[a_collection], write=[a_collection]
            )
            partner = make_key(session, "lab-b", clearance="amber", read=[a_collection])
            watcher = make_key(session, "watchers", clearance="amber", read=[a_collection])
        b_sessions = make_sessionmaker(make_engine(b_url, pool_size=2))
        with session_scope(b_sessions) as session:
            pulled = make_collection(session, root="lab-b", title="from lab A")
            preloaded = make_collection(session, root="lab-b", title="preloaded")
            client_key = make_key(session, "traffic", clearance="amber", read=[pulled, preloaded])
        started = time.monotonic()
        # Dated now: an old indicator's score has decayed below its kind's threshold and is not matched.
        today = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        dated = {"created": today, "modified": today, "valid_from": today}
        for first in range(0, args.indicators, 5000):
            seed_local(
                b_sessions,
                preloaded,
                [
                    make_indicator(n, pattern=f"[ipv4-addr:value = '{ipaddress.IPv4Address(0x64000000 + n)}']", **dated)
                    for n in range(first, min(args.indicators, first + 5000))
                ],
            )
        preload_seconds = time.monotonic() - started
        with (
            live_server(a_url, env={"IX_STATISTICS_INTERVAL_SECONDS": "10"}) as a_server,
            live_server(b_url) as b_server,
        ):
            a = Lab(a_server, a_url, a_collection, detector)
            b = Lab(b_server, b_url, pulled, client_key)
            with session_scope(b_sessions) as session:
                sync.create_source(
                    session,
                    name="lab-a",
                    url=f"{a_server.base}/taxii2/",
                    api_root="lab-a",
                    remote_collection=str(a_collection),
                    local_collection=pulled,
                    credentials_ref=f"env:{SECRET_ENV}",
                )
            started = time.monotonic()
            answer = httpx.post(
                f"{b_server.base}/api/v1/match",
                json=[{"timestamp": datetime.now(UTC).isoformat(), "source_ip": "100.0.0.0"}],
                headers={"Authorization": client_key.bearer["Authorization"]},
                timeout=600,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["matches"], "the preload did not reach B's matcher"
            build_seconds = time.monotonic() - started
            follower = Follower(b_url, f"{partner.key_id}:{partner.secret}", workdir / "follower.log")
            follower.start()
            time.sleep(3.0)  # the follower connects (its start is not part of a share)
            phases = [Phase("plain"), Phase(f"{args.subscribers} subscribers on A"), Phase("kill -9 of the follower")]
            n = 0
            for phase in phases:
                if phase is phases[0]:
                    n = run_phase(phase, a, b, detector, args.seconds, args.rate, n)
                elif phase is phases[1]:
                    n = run_phase(
                        phase,
                        a,
                        b,
                        detector,
                        args.seconds,
                        args.rate,
                        n,
                        subscriber_key=watcher,
                        subscriber_count=args.subscribers,
                    )
                else:
                    n = run_phase(phase, a, b, detector, args.kill_seconds, args.rate, n, follower=follower)
                time.sleep(2.0)
                decompose(phase, b_url, pulled)
                theirs, ours = ids_of(a_url, a_collection), ids_of(b_url, pulled)
                rows, distinct = row_count(b_url, pulled), len(ours)
                with b_sessions() as session:
                    source = sources.get_source(session, "lab-a")
                    stored = source.objects_total if source else -1
                phase.exact = (
                    "yes"
                    if theirs == ours and rows == distinct == stored
                    else f"NO (A {len(theirs)}, B {rows} rows / {distinct} distinct, counted {stored})"
                )
            follower.stop()
    finally:
        for name in names:
            drop_database(ADMIN_URL, name)
    load = os.getloadavg()
    print(
        f"B preloaded with {args.indicators:,} indicators ({preload_seconds:.0f} s to store; "
        f"first match, the full build: {build_seconds:.1f} s)"
    )
    print(
        f"{args.rate:g} detections/s at A for {args.seconds:g} s per phase ({args.kill_seconds:g} s for kill -9); "
        f"load average {load[0]:.1f} {load[1]:.1f} on {os.cpu_count()} cores"
    )
    print(
        "| phase | samples | p50 | p95 | p99 | max | unmatched | exactly once at B | stored at B p50 / p99 "
        "| match request p50 / p99 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for phase in phases:
        values = phase.latencies or [float("nan")]
        quantiles = " | ".join(f"{percentile(values, q):.3f} s" for q in (0.5, 0.95, 0.99))
        at_b = phase.at_b or [float("nan")]
        request = phase.match_seconds or [float("nan")]
        print(
            f"| {phase.name} | {len(phase.latencies)} | {quantiles} | {max(values):.3f} s | {phase.unmatched} | "
            f"{phase.exact} | {percentile(at_b, 0.5):.3f} / {percentile(at_b, 0.99):.3f} s | "
            f"{percentile(request, 0.5):.3f} / {percentile(request, 0.99):.3f} s |"
        )
    print("Where the time goes (wall clock): A's 200 -> the follower's write at B | that write -> first match at B")
    for phase in phases:
        into, after = phase.to_b_store or [float("nan")], phase.store_to_match or [float("nan")]
        print(
            f"  {phase.name}: to B's store p50 {percentile(into, 0.5):.3f} p99 {percentile(into, 0.99):.3f} s | "
            f"store to match p50 {percentile(after, 0.5):.3f} p99 {percentile(after, 0.99):.3f} s"
        )
    sub = phases[1].subscriber_latencies
    if sub:
        print(
            f"A's 200 to the event at each of {args.subscribers} subscribers: {len(sub)} deliveries, "
            f"p50 {percentile(sub, 0.5):.3f} s, p99 {percentile(sub, 0.99):.3f} s, max {max(sub):.3f} s"
        )


if __name__ == "__main__":
    main()
