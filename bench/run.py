"""Side-by-side TAXII 2.1 benchmark: indicator-exchange (PostgreSQL and SQLite) against the OASIS reference
server (medallion, memory backend, gunicorn) and OpenTAXII (TAXII 2.1 on PostgreSQL), same workload, same
client, one run, on loopback. Prints absolute figures and ratios (ours / peer) and writes bench/results/.

    python bench/run.py --sizes 10000,100000 [--servers ours-pg,ours-sqlite,medallion,opentaxii] [--quick]

Peers are installed into bench/.peers/<name> (their own virtual environments) on first use. Every step has
a time budget (--step-seconds); a server that does not finish in it is reported as DNF with the rate it
reached. Traffic goes to 127.0.0.1 only.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / ".peers"
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("IX_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TAXII = "application/taxii+json;version=2.1"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
BENCH_NAMESPACE = uuid.UUID("3b8f0b7e-6a51-5c2e-9d64-1f0c2a7b9e55")
OURS_VALIDATION = "strict"  # ours' collection policy (--validation); bench/validation.py measures both


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_object(i: int) -> dict[str, Any]:
    """A realistic residential-proxy indicator; ids and addresses depend only on ``i``."""
    ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
    stamp = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00.000Z"
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(BENCH_NAMESPACE, str(i))}",
        "created": stamp,
        "modified": stamp,
        "name": f"Residential proxy exit {ip}",
        "description": "Residential proxy exit used for distillation traffic (benchmark object)",
        "indicator_types": ["anonymization"],
        "pattern": f"[ipv4-addr:value = '{ip}']",
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": stamp[:19] + "Z",
        "labels": ["residential-proxy"],
        "confidence": 60,
        "object_marking_refs": [GREEN],
    }


def run(cmd: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> str:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}… failed: {result.stderr[-2000:]}")
    return result.stdout


def fresh_pg(name: str) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (gunicorn and uvicorn workers)."""
    total = 0
    pids = [pid]
    try:
        children = run(["pgrep", "-P", str(pid)]).split()
        pids += [int(c) for c in children]
    except RuntimeError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@dataclass
class Server:
    """A running TAXII 2.1 server under test."""

    name: str
    base: str
    objects_path: str  # e.g. /api1/collections/<id>/objects/
    auth: tuple[str, str]
    process: subprocess.Popen[bytes] | None = None
    pg_url: str | None = None
    collection_id: str = ""
    notes: list[str] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, auth=self.auth, timeout=600, headers={"Accept": TAXII, "Content-Type": TAXII}
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.pg_url:
            # A killed worker's query keeps running in PostgreSQL (OpenTAXII's count(*) over a timed-out page ran
            # on for minutes and took a core from the next server measured): end its backends too.
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (self.pg_url.rsplit("/", 1)[1],),
                )


def wait_ready(url: str, auth: tuple[str, str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, auth=auth, headers={"Accept": TAXII}, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def start_ours(
    backend: str, workdir: Path, workers: int, validation: str | None = None, database: str = "ix_bench"
) -> Server:
    """Ours on a fresh database (``database``: another name lets another benchmark run beside this one); its
    collection's validation policy is ``validation`` (default: ``--validation``)."""
    ix = str(ROOT / ".venv" / "bin" / "indicator-exchange")
    url = fresh_pg(database) if backend == "pg" else f"sqlite:///{workdir / 'ix-bench.db'}"
    env = dict(os.environ, IX_DATABASE_URL=url, IX_DEFAULT_REQUESTS_PER_MINUTE="0", IX_MAX_CONTENT_LENGTH="104857600")
    run([ix, "db", "upgrade"], env)
    run([ix, "admin", "api-root", "create", "bench", "--title", "bench"], env)
    collection = json.loads(
        run(
            [
                ix,
                "admin",
                "collection",
                "create",
                "--api-root",
                "bench",
                "--title",
                "bench",
                "--default-tlp",
                "green",
                "--validation",
                validation or OURS_VALIDATION,
                "--json",
            ],
            env,
        )
    )["id"]
    run(
        [
            ix,
            "admin",
            "principal",
            "create",
            "bench",
            "--kind",
            "admin",
            "--clearance",
            "red",
            "--requests-per-minute",
            "0",
        ],
        env,
    )
    key = json.loads(run([ix, "admin", "key", "create", "bench", "--json"], env))
    port = free_port()
    process = subprocess.Popen(
        [ix, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
        env=env,
        start_new_session=True,
    )
    server = Server(
        name=f"ours-{backend}",
        base=f"http://127.0.0.1:{port}",
        objects_path=f"/bench/collections/{collection}/objects/",
        auth=(key["key_id"], key["secret"]),
        process=process,
        pg_url=url if backend == "pg" else None,
        collection_id=collection,
    )
    wait_ready(server.base + "/taxii2/", server.auth)
    return server


def ensure_peer(name: str, packages: list[str]) -> Path:
    venv = PEERS / name
    marker = venv / ".installed"
    if not marker.exists():
        log(f"installing {name} into {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "-q", *packages])
        marker.touch()
    return venv


def start_medallion(workdir: Path) -> Server:
    venv = ensure_peer("medallion", ["medallion==3.0.0", "gunicorn==27.0.1"])
    collection = str(uuid.uuid4())
    data = {
        "/discovery": {
            "title": "medallion",
            "api_roots": ["http://127.0.0.1/api1/"],
            "default": "http://127.0.0.1/api1/",
        },
        "api1": {
            "information": {"title": "api1", "versions": [TAXII], "max_content_length": 104857600},
            "status": [],
            "collections": [
                {
                    "id": collection,
                    "title": "bench",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [],
                    "manifest": [],
                }
            ],
        },
    }
    (workdir / "medallion-data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(workdir / "medallion-data.json"),
        },
        "users": {"bench": "bench"},
        "taxii": {"max_page_size": 1000},
    }
    (workdir / "medallion.json").write_text(json.dumps(config))
    (workdir / "medallion_wsgi.py").write_text(
        "from medallion import application_instance, load_app\n"
        f"load_app({str(workdir / 'medallion.json')!r})\napp = application_instance\n"
    )
    port = free_port()
    # The memory backend lives in one process: one worker, threads for concurrency.
    process = subprocess.Popen(
        [
            str(venv / "bin" / "gunicorn"),
            "--chdir",
            str(workdir),
            "-w",
            "1",
            "--threads",
            "8",
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "3600",
            "medallion_wsgi:app",
        ],
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    server = Server(
        name="medallion",
        base=f"http://127.0.0.1:{port}",
        objects_path=f"/api1/collections/{collection}/objects/",
        auth=("bench", "bench"),
        process=process,
        collection_id=collection,
    )
    wait_ready(server.base + "/taxii2/", server.auth)
    return server


def start_opentaxii(workdir: Path, workers: int) -> Server:
    venv = ensure_peer("opentaxii", ["opentaxii==0.9.3", "sqlalchemy<2", "psycopg2-binary", "gunicorn==27.0.1"])
    # OpenTAXII 0.9.3 on PostgreSQL answers every POST with a 500 after storing the objects: psycopg2 returns the
    # job id as a UUID, which its json.dumps cannot encode. A one-line shim (UUIDs encode as strings) lets it
    # answer; it changes nothing else. Reported in the table's notes.
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "sitecustomize.py").write_text(
        "import json, uuid\n_default = json.JSONEncoder.default\n"
        "json.JSONEncoder.default = lambda self, o: str(o) if isinstance(o, uuid.UUID) else _default(self, o)\n"
    )
    url = fresh_pg("otx_bench")
    port = free_port()
    config = f"""---
domain: "127.0.0.1:{port}"
support_basic_auth: yes
return_server_error_details: no
auth_api:
  class: opentaxii.auth.sqldb.SQLDatabaseAPI
  parameters: {{db_connection: "{url}", create_tables: yes, secret: bench-secret, token_ttl_secs: 86400}}
taxii1:
taxii2:
  persistence_api:
    class: opentaxii.persistence.sqldb.Taxii2SQLDatabaseAPI
    parameters: {{db_connection: "{url}", create_tables: yes}}
  max_content_length: 104857600
  title: opentaxii
  public_discovery: yes
logging: {{opentaxii: warning, root: warning}}
"""
    (workdir / "opentaxii.yml").write_text(config)
    env = dict(os.environ, OPENTAXII_CONFIG=str(workdir / "opentaxii.yml"), PYTHONWARNINGS="ignore")
    bin_dir = venv / "bin"
    run([str(bin_dir / "opentaxii-add-api-root"), "-t", "bench", "--default"], env)
    with psycopg.connect(url) as conn:
        root_id = str(conn.execute("SELECT id FROM opentaxii_api_root LIMIT 1").fetchone()[0])  # type: ignore[index]
    run([str(bin_dir / "opentaxii-add-collection"), "-r", root_id, "-t", "bench", "--public", "--public-write"], env)
    run([str(bin_dir / "opentaxii-create-account"), "-u", "bench", "-p", "bench", "-a"], env)
    with psycopg.connect(url) as conn:
        collection = str(conn.execute("SELECT id FROM opentaxii_collection LIMIT 1").fetchone()[0])  # type: ignore[index]
    process = subprocess.Popen(
        [
            str(bin_dir / "gunicorn"),
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "3600",
            "opentaxii.http:app",
        ],
        env=env,
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    server = Server(
        name="opentaxii",
        base=f"http://127.0.0.1:{port}",
        objects_path="",
        auth=("bench", "bench"),
        process=process,
        pg_url=url,
        collection_id=collection,
    )
    wait_ready(server.base + "/taxii2/", server.auth)
    # The API root comes from discovery; the collection id from its database, because OpenTAXII 0.9.3 answers
    # GET collections/ with a 500 on this setup.
    with server.client() as client:
        discovery = client.get("/taxii2/").json()
    root = httpx.URL(discovery.get("default") or discovery["api_roots"][0]).path.rstrip("/")
    server.objects_path = f"{root}/collections/{collection}/objects/"
    server.notes.append(
        "OpenTAXII 0.9.3 needed a shim to answer POSTs on PostgreSQL (UUID in its JSON status); "
        "GET collections/ answers 500, so the collection id comes from its database"
    )
    return server


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    @property
    def over(self) -> bool:
        return time.monotonic() > self.deadline

    @property
    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())


class OutOfTime(Exception):
    """A single request outlived the step's budget."""


def timed(client: httpx.Client, budget: Budget, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request that may not outlive the step's budget (a slow server is then DNF, not a hang)."""
    try:
        return client.request(method, url, timeout=budget.remaining + 1, **kwargs)
    except httpx.TimeoutException:
        raise OutOfTime(f"a single request took longer than the {int(budget.remaining)} s left") from None


def ingest(server: Server, start: int, count: int, envelope: int, budget: Budget) -> dict[str, Any]:
    """POST ``count`` objects in envelopes; objects/s, and the last tenth's time over the first tenth's."""
    times: list[float] = []
    sent = 0
    with server.client() as client:
        for offset in range(start, start + count, envelope):
            body = json.dumps(
                {"objects": [make_object(i) for i in range(offset, min(offset + envelope, start + count))]}
            )
            began = time.perf_counter()
            try:
                response = timed(client, budget, "POST", server.objects_path, content=body)
            except OutOfTime as exc:
                return {"objects": sent, "dnf": str(exc), **({"rate": round(sent / sum(times), 1)} if times else {})}
            times.append(time.perf_counter() - began)
            if response.status_code not in (200, 202):
                return {"error": f"HTTP {response.status_code}: {response.text[:200]}"}
            sent += min(envelope, start + count - offset)
            if budget.over:
                break
    total = sum(times)
    tenth = max(1, len(times) // 10)
    result: dict[str, Any] = {"objects": sent, "seconds": round(total, 2), "rate": round(sent / total, 1)}
    if len(times) >= 10:
        result["slowdown"] = round(sum(times[-tenth:]) / sum(times[:tenth]), 2)
    if sent < count:
        result["dnf"] = f"{sent}/{count} in budget"
    return result


def poll(server: Server, budget: Budget, *, added_after: str | None = None, limit: int = 1000) -> dict[str, Any]:
    """Page through the collection with limit=1000 following `next` (or X-TAXII-Date-Added-Last)."""
    latencies: list[float] = []
    received = 0
    params: dict[str, Any] = {"limit": limit}
    if added_after:
        params["added_after"] = added_after
    with server.client() as client:
        while True:
            began = time.perf_counter()
            try:
                response = timed(client, budget, "GET", server.objects_path, params=params)
            except OutOfTime as exc:
                return {
                    "objects": received,
                    "dnf": str(exc),
                    **({"rate": round(received / sum(latencies), 1)} if latencies else {}),
                }
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                return {"error": f"HTTP {response.status_code}: {response.text[:200]}"}
            envelope = response.json()
            received += len(envelope.get("objects", []))
            if not envelope.get("more"):
                break
            if envelope.get("next"):
                params = {
                    "limit": limit,
                    "next": envelope["next"],
                    **({"added_after": added_after} if added_after else {}),
                }
            else:
                params = {"limit": limit, "added_after": response.headers["X-TAXII-Date-Added-Last"]}
            if budget.over:
                break
    total = sum(latencies)
    result: dict[str, Any] = {
        "objects": received,
        "seconds": round(total, 2),
        "rate": round(received / total, 1),
        "first_ms": round(latencies[0] * 1000, 1),
        "middle_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "last_ms": round(latencies[-1] * 1000, 1),
        "pages": len(latencies),
    }
    if envelope.get("more"):
        result["dnf"] = f"{received} objects in budget"
    return result


def date_added_of(server: Server, fraction: float, total: int) -> str | None:
    """The date_added of the object at ``fraction`` of the collection (from the manifest)."""
    target = make_object(int(total * fraction))["id"]
    manifest = server.objects_path.replace("/objects/", "/manifest/")
    with server.client() as client:
        try:
            response = timed(client, Budget(60), "GET", manifest, params={"match[id]": target})
        except OutOfTime:
            return None
        objects = response.json().get("objects", []) if response.status_code == 200 else []
    return objects[0]["date_added"] if objects else None


def latencies(server: Server, requests: list[dict[str, Any]], budget: Budget) -> dict[str, Any]:
    samples: list[float] = []
    with server.client() as client:
        for params in requests:
            began = time.perf_counter()
            try:
                response = timed(client, budget, "GET", server.objects_path, params=params)
            except OutOfTime as exc:
                return {"dnf": str(exc)}
            samples.append(time.perf_counter() - began)
            if response.status_code != 200:
                return {"error": f"HTTP {response.status_code}"}
            if budget.over:
                break
    if not samples:
        return {"error": "no sample"}
    samples.sort()
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 1),
    }


def concurrent_readers(server: Server, readers: int, budget: Budget, pages: int) -> dict[str, Any]:
    counts = [0] * readers
    errors: list[str] = []

    def reader(index: int) -> None:
        params: dict[str, Any] = {"limit": 1000}
        with server.client() as client:
            for _ in range(pages):
                try:
                    response = timed(client, budget, "GET", server.objects_path, params=params)
                except OutOfTime:
                    errors.append("timeout")
                    return
                if response.status_code != 200:
                    errors.append(str(response.status_code))
                    return
                envelope = response.json()
                counts[index] += len(envelope.get("objects", []))
                if not envelope.get("more") or budget.over:
                    return
                params = (
                    {"limit": 1000, "next": envelope["next"]}
                    if envelope.get("next")
                    else {"limit": 1000, "added_after": response.headers["X-TAXII-Date-Added-Last"]}
                )

    began = time.perf_counter()
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    result: dict[str, Any] = {"objects": sum(counts), "rate": round(sum(counts) / elapsed, 1)}
    if errors:
        result["error"] = f"{len(errors)} readers failed: {errors[:3]}"
    return result


def psycopg_limit(url: str, collection_id: str, budget: Budget) -> dict[str, Any]:
    """How fast PostgreSQL itself returns the same rows (stored JSON, keyset pages of 1,000) to bare psycopg."""
    received = 0
    began = time.perf_counter()
    with psycopg.connect(url) as conn:
        position = -1
        while not budget.over:
            rows = conn.execute(
                "SELECT date_added, raw FROM object_version WHERE collection_id = %s AND is_latest AND date_added > %s "
                "ORDER BY date_added LIMIT 1000",
                (collection_id, position),
            ).fetchall()
            if not rows:
                break
            received += len(rows)
            position = rows[-1][0]
    elapsed = time.perf_counter() - began
    return {"objects": received, "rate": round(received / elapsed, 1)}


def measure(server: Server, size: int, step_seconds: float, small_envelopes: int) -> dict[str, Any]:
    log(f"{server.name}: ingest {size} objects in envelopes of 1000")
    figures: dict[str, Any] = {"rss_idle_mib": round(rss_mib(server.process.pid), 1) if server.process else None}
    figures["ingest_1000"] = ingest(server, 0, size, 1000, Budget(step_seconds))
    loaded = figures["ingest_1000"].get("objects", 0)
    log(f"{server.name}: ingest {small_envelopes} more in envelopes of 100")
    figures["ingest_100"] = ingest(server, size, small_envelopes, 100, Budget(step_seconds))
    loaded += figures["ingest_100"].get("objects", 0)
    figures["loaded"] = loaded
    log(f"{server.name}: full poll of {loaded}")
    figures["full_poll"] = poll(server, Budget(step_seconds))
    cut = date_added_of(server, 0.9, min(size, figures["ingest_1000"].get("objects", size)))
    if cut:
        figures["incremental_poll"] = poll(server, Budget(step_seconds), added_after=cut)
    ids = [{"match[id]": make_object(i)["id"]} for i in range(0, max(1, loaded), max(1, loaded // 200))][:200]
    figures["match_id"] = latencies(server, ids, Budget(step_seconds))
    figures["match_type"] = latencies(server, [{"match[type]": "indicator", "limit": 1000}] * 20, Budget(step_seconds))
    log(f"{server.name}: 8 concurrent readers")
    figures["readers_8"] = concurrent_readers(server, 8, Budget(step_seconds), pages=max(1, min(20, loaded // 1000)))
    figures["rss_loaded_mib"] = round(rss_mib(server.process.pid), 1) if server.process else None
    if server.name == "ours-pg" and server.pg_url:
        figures["psycopg_limit"] = psycopg_limit(server.pg_url, server.collection_id, Budget(step_seconds))
    return figures


HEADLINES: list[tuple[str, str, str, bool]] = [
    ("ingest, envelopes of 1000 (obj/s)", "ingest_1000", "rate", True),
    ("ingest slowdown, last/first tenth", "ingest_1000", "slowdown", False),
    ("ingest, envelopes of 100 (obj/s)", "ingest_100", "rate", True),
    ("full poll, limit=1000 (obj/s)", "full_poll", "rate", True),
    ("  first page (ms)", "full_poll", "first_ms", False),
    ("  middle page (ms)", "full_poll", "middle_ms", False),
    ("  last page (ms)", "full_poll", "last_ms", False),
    ("incremental poll, added_after (obj/s)", "incremental_poll", "rate", True),
    ("match[id] p50 (ms)", "match_id", "p50_ms", False),
    ("match[id] p99 (ms)", "match_id", "p99_ms", False),
    ("match[type] p50 (ms)", "match_type", "p50_ms", False),
    ("match[type] p99 (ms)", "match_type", "p99_ms", False),
    ("8 concurrent readers (obj/s)", "readers_8", "rate", True),
    ("server RSS idle (MiB)", "rss_idle_mib", "", False),
    ("server RSS loaded (MiB)", "rss_loaded_mib", "", False),
    ("bare psycopg, same rows (obj/s)", "psycopg_limit", "rate", True),
]


def cell(figures: dict[str, Any] | None, key: str, field_name: str) -> tuple[str, float | None]:
    if figures is None:
        return "—", None
    if "failed" in figures:
        return "n/a", None
    value = figures.get(key)
    if field_name and isinstance(value, dict):
        if "error" in value:
            return "error", None
        number = value.get(field_name)
        text = f"{number:,}" if isinstance(number, (int, float)) else "—"
        if "dnf" in value:
            text = f"{text} (DNF)" if text != "—" else "DNF"
        return text, number if isinstance(number, (int, float)) else None
    if isinstance(value, (int, float)):
        return f"{value:,}", value
    return "—", None


def table(results: dict[str, dict[str, Any]], size: int, ours: str = "ours-pg") -> str:
    names = list(results)
    peers = [n for n in names if not n.startswith("ours")]
    header = ["metric", *names, *[f"{ours} / {p}" for p in peers]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, key, field_name, higher_better in HEADLINES:
        row = [label]
        values = {}
        for name in names:
            text, number = cell(results[name], key, field_name)
            row.append(text)
            values[name] = number
        for peer in peers:
            a, b = values.get(ours), values.get(peer)
            if a and b:
                ratio = a / b if higher_better else b / a
                row.append(f"{ratio:,.1f}x")
            else:
                row.append("—")
        lines.append("| " + " | ".join(row) + " |")
    notes = [f"- {name}: {r['failed']}" for name, r in results.items() if "failed" in r]
    notes += [f"- {name}: {note}" for name, r in results.items() for note in r.get("notes", [])]
    return f"#### {size:,} objects\n\n" + "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


STARTERS: dict[str, Callable[[Path, int], Server]] = {
    "ours-pg": lambda d, w: start_ours("pg", d, w),
    "ours-sqlite": lambda d, w: start_ours("sqlite", d, 1),
    "medallion": lambda d, w: start_medallion(d),
    "opentaxii": lambda d, w: start_opentaxii(d, w),
}


@dataclass
class Run:
    sizes: list[int]
    servers: list[str]
    step_seconds: float
    workers: int
    results: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)


def execute(plan: Run) -> Iterator[str]:
    for size in plan.sizes:
        plan.results[size] = {}
        for name in plan.servers:
            workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            server = None
            try:
                server = STARTERS[name](workdir, plan.workers)
                plan.results[size][name] = measure(server, size, plan.step_seconds, min(10_000, max(1000, size // 10)))
                if server.notes:
                    plan.results[size][name]["notes"] = server.notes
            except Exception as exc:  # a peer that cannot run is reported, not fatal
                log(f"{name}: {exc}")
                plan.results[size][name] = {"failed": str(exc)[:300]}
            finally:
                if server:
                    server.stop()
                shutil.rmtree(workdir, ignore_errors=True)
        yield table(plan.results[size], size)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="Comma-separated collection sizes.")
    parser.add_argument("--servers", default="ours-pg,ours-sqlite,medallion,opentaxii")
    parser.add_argument("--step-seconds", type=float, default=180, help="Time budget of each measured step.")
    parser.add_argument("--workers", type=int, default=2, help="Worker processes for ours and OpenTAXII.")
    parser.add_argument("--quick", action="store_true", help="2,000 objects, ours only: a smoke test.")
    parser.add_argument(
        "--validation",
        choices=["strict", "basic"],
        default="strict",
        help="Validation policy of ours' collections (bench/validation.py compares both).",
    )
    args = parser.parse_args()
    global OURS_VALIDATION
    OURS_VALIDATION = args.validation
    plan = Run(
        sizes=[int(s) for s in args.sizes.split(",")],
        servers=args.servers.split(","),
        step_seconds=args.step_seconds,
        workers=args.workers,
    )
    if args.quick:
        plan.sizes, plan.servers, plan.step_seconds = [2000], ["ours-pg", "ours-sqlite"], 60
    stamp = datetime.now(UTC)
    report = [
        f"### Benchmark {stamp:%Y-%m-%d %H:%M} UTC — {machine()}\n",
        "Same client (httpx, keep-alive), loopback, one run. Ratios: ours (PostgreSQL) / peer, >1 is better "
        "for ours (for latencies, peer / ours). DNF: the step's time budget ran out first. Ours' collections "
        f"validate `{OURS_VALIDATION}`.\n",
    ]
    for section in execute(plan):
        print(section, flush=True)
        report.append(section)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{stamp:%Y%m%dT%H%M}" + ("-quick" if args.quick else "")
    (RESULTS / f"{name}.md").write_text("\n".join(report))
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"machine": machine(), "at": stamp.isoformat(), "results": plan.results}, indent=2)
    )
    log(f"wrote {RESULTS / name}.md and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
