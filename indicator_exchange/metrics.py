"""Prometheus metrics: requests by route and status and their latency, objects served and ingested, rate-limit
refusals, database outages and pool use, the audit spool and failed audit writes, failed authentications,
replica lag, stream subscribers, sync lag per source, the matcher's index; served at ``/metrics`` to the
addresses of ``IX_METRICS_CLIENTS`` only. Other modules report through the small functions at the end
(``stream_subscribed``, ``sync_lag``, ``matcher_refreshed``, ``watch_pool``).

With several workers ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers
start, so any worker's scrape sums every worker's figures (prometheus-client's multiprocess mode).
"""

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.registry import REGISTRY
from sqlalchemy import Engine

from indicator_exchange.store.engine import on_checkouts

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "ix_http_requests", "HTTP requests answered, by route template and status code.", ["method", "route", "status"]
)
DATABASE_UNAVAILABLE = Counter(
    "ix_database_unavailable", "Requests answered 503 because the database could not be reached."
)
AUDIT_SPOOLED = Counter("ix_audit_spooled", "Audit rows kept in memory because the database could not take them.")
AUDIT_SPOOL_WRITTEN = Counter("ix_audit_spool_written", "Spooled audit rows written once the database was back.")
AUDIT_DROPPED = Counter("ix_audit_dropped", "Audit rows lost: the spool was full (IX_AUDIT_SPOOL_SIZE).")
AUDIT_SPOOL_SIZE = Gauge(
    "ix_audit_spool_size", "Audit rows waiting in memory for the database.", multiprocess_mode="livesum"
)
AUTH_FAILURES = Counter("ix_auth_failures", "Failed authentications (wrong, unknown, revoked or expired keys).")
AUTH_THROTTLED = Counter(
    "ix_auth_throttled", "Requests refused 429 before authenticating: too many recent failures (key or address)."
)
CONNECTIONS_REFUSED = Counter(
    "ix_connections_refused", "Connections answered 503 and closed at IX_MAX_CONNECTIONS (no idle one to close)."
)
CONNECTIONS_CLOSED = Counter(
    "ix_connections_closed",
    "Connections closed by the edge limits: head-timeout, body-timeout, head-too-large.",
    ["reason"],
)


def registry() -> CollectorRegistry:
    """The registry to expose: the multiprocess collector's when workers share a metrics directory."""
    if os.environ.get(MULTIPROCESS_ENV):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY


# ------------------------------------------------------------------------------------------- scale-out figures
# Latency buckets from a cached page (about a millisecond) to a large export.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_SECONDS = Histogram(
    "ix_http_request_seconds",
    "Time from request to the last byte of the answer, by route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
OBJECTS_SERVED = Counter("ix_objects_served", "STIX objects sent in TAXII pages (polls, manifests, versions).")
OBJECTS_INGESTED = Counter("ix_objects_ingested", "STIX objects accepted by TAXII POSTs and ingest requests.")
RATE_LIMITED = Counter(
    "ix_rate_limited", "Requests refused 429 by a key's rate limit or daily quota (not the failure throttle)."
)
AUDIT_WRITE_FAILED = Counter(
    "ix_audit_write_failures", "Audit rows whose write failed (then spooled, or logged as lost)."
)
POOL_CONNECTIONS = Gauge(
    "ix_db_pool_connections",
    "Database connections checked out of each pool now, all workers together.",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_CAPACITY = Gauge(
    "ix_db_pool_capacity",
    "Most connections each pool may hold (size plus overflow), all workers together.",
    ["pool"],
    multiprocess_mode="livesum",
)
REPLICA_LAG = Gauge(
    "ix_replica_lag_seconds",
    "Replay lag of each read replica as last measured (-1: unreachable).",
    ["replica"],
    multiprocess_mode="livemax",
)
REPLICA_IN_ROTATION = Gauge(
    "ix_replica_in_rotation",
    "1 while a replica serves reads, 0 while it is down or lags too far.",
    ["replica"],
    multiprocess_mode="livemin",
)
REPLICA_READS = Counter("ix_replica_reads", "Reads sent to a replica or, failing one, the primary.", ["target"])
STREAM_SUBSCRIBERS = Gauge(
    "ix_stream_subscribers",
    "Clients subscribed to a live stream now, all workers together.",
    multiprocess_mode="livesum",
)
STREAM_READS = Counter(
    "ix_stream_reads",
    "Batch reads of live streams: 'own' made by the stream, 'shared' answered by a read another stream of the "
    "same clearance made of the same page.",
    ["read"],
)
SYNC_LAG = Gauge(
    "ix_sync_lag_seconds",
    "How far behind each feed source the local copy is (seconds since the newest object synced was added upstream).",
    ["source"],
    multiprocess_mode="mostrecent",
)
MATCHER_INDEX_SIZE = Gauge(
    "ix_matcher_index_patterns",
    "Patterns in the matcher's index after its last refresh.",
    multiprocess_mode="livemax",
)
MATCHER_REFRESH_SECONDS = Histogram(
    "ix_matcher_refresh_seconds", "Time to (re)build the matcher's index.", buckets=_LATENCY_BUCKETS
)


def stream_subscribed() -> None:
    """A stream (SSE) client connected; pair with ``stream_unsubscribed`` when it goes."""
    STREAM_SUBSCRIBERS.inc()


def stream_unsubscribed() -> None:
    STREAM_SUBSCRIBERS.dec()


def sync_lag(source: str, seconds: float) -> None:
    """After a sync run of ``source``: how old the newest object it brought is, upstream."""
    SYNC_LAG.labels(source).set(seconds)


def matcher_refreshed(patterns: int, seconds: float) -> None:
    """After the matcher rebuilt its index: its size and how long the rebuild took."""
    MATCHER_INDEX_SIZE.set(patterns)
    MATCHER_REFRESH_SECONDS.observe(seconds)


def watch_pool(engine: Engine, name: str) -> None:
    """Count ``engine``'s checked-out connections in ``ix_db_pool_connections{pool=name}`` (pool events)."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    if callable(size):
        POOL_CAPACITY.labels(name).inc(size() + max(0, overflow))
    gauge = POOL_CONNECTIONS.labels(name)
    on_checkouts(engine, gauge.inc, gauge.dec)


def replica_measured(name: str, lag_seconds: float, in_rotation: bool) -> None:
    """``store.replicas``: a replica's lag (-1: unreachable) and whether it serves reads."""
    REPLICA_LAG.labels(name).set(lag_seconds)
    REPLICA_IN_ROTATION.labels(name).set(1 if in_rotation else 0)


def replica_read(target: str) -> None:
    """``store.replicas``: a read went to a ``replica`` or, none being fit, the ``primary``."""
    REPLICA_READS.labels(target).inc()
