"""Prometheus metrics of the edge: requests by route and status, database outages, the audit spool, failed
authentications; served at ``/metrics`` to the addresses of ``IX_METRICS_CLIENTS`` only.

With several workers ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers
start, so any worker's scrape sums every worker's figures (prometheus-client's multiprocess mode).
"""

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, multiprocess
from prometheus_client.registry import REGISTRY

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
