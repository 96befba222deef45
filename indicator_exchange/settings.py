"""Service configuration, read from ``IX_*`` environment variables (or a ``.env`` file)."""

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./indicator-exchange.db"
DEMO_COMMUNITY_KEY = "demo-community-key-change-me"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.0/8, ::1"`` as networks (a bare address is a /32 or /128); ``ValueError`` on a bad entry."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


def address_in(address: str | None, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether ``address`` (a client address as the server saw it) lies in one of ``networks``."""
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class Settings(BaseSettings):
    """Every tunable of the service; documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="IX_", env_file=".env", extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the store.")
    db_connections_per_worker: int = Field(
        20,
        ge=4,
        description="PostgreSQL: the most connections one worker opens, all pools together (request pool and its "
        "overflow, bookkeeping pool, the event loop's connection). `serve` refuses to start when workers x this "
        "exceeds the server's max_connections less its reserved connections.",
    )
    db_pool_size: int | None = Field(
        None,
        ge=1,
        description="Deprecated: use IX_DB_CONNECTIONS_PER_WORKER. When set (and that is not), a worker may open "
        "2 x this many connections.",
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest a connection may take to send a complete request head (closed after)."
    )
    max_header_bytes: int = Field(
        65_536, ge=1024, description="Largest request head (request line and headers), in bytes (431 above)."
    )
    body_timeout_seconds: float = Field(
        60.0, gt=0, description="Longest a request body may pause between two chunks (the connection is closed)."
    )
    max_connections: int = Field(
        500,
        ge=1,
        description="Open connections per worker. At the limit a new connection closes the oldest idle one (no "
        "request in progress), or is answered 503 and closed when there is none.",
    )
    listen_backlog: int = Field(
        2048, ge=1, description="Connections the kernel queues before accept (capped by net.core.somaxconn)."
    )
    keep_alive_seconds: int = Field(5, ge=1, description="How long an idle keep-alive connection is kept open.")
    audit_spool_size: int = Field(
        10_000,
        ge=0,
        description="Audit rows a worker keeps in memory while the database cannot take them, written with the "
        "next successful audit write; beyond it rows are dropped and counted.",
    )
    metrics_clients: str = Field(
        "127.0.0.1/32,::1/128",
        description="Comma-separated CIDRs allowed to read /metrics (others get 404); empty = nobody.",
    )
    auth_failures_per_minute: int = Field(
        10,
        ge=0,
        description="Failed authentications allowed per key id and per client address in a sliding minute; "
        "beyond, 429 with Retry-After without checking the key (0 = no throttle). An address over it still has "
        "key ids under their own limit checked, up to 10 times the limit (auth.throttle).",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated CIDRs of reverse proxies whose X-Forwarded-For/-Proto/-Host are believed; "
        "empty = none.",
    )
    public_base_url: str | None = Field(
        None, description="Scheme and host (and port) the service is reached at, e.g. https://taxii.example.org."
    )
    hsts_seconds: int = Field(
        31_536_000, ge=0, description="Strict-Transport-Security max-age sent over HTTPS (0 = no header)."
    )
    auth_cache_seconds: float = Field(
        300.0,
        ge=0,
        description="Longest a worker reuses an authenticated key without re-reading it. Any change to keys, "
        "principals or grants (database triggers raise an epoch) invalidates it at once. 0 disables the cache.",
    )
    statistics_interval_seconds: float = Field(
        10.0,
        ge=0,
        description="PostgreSQL with autovacuum off: how often the server checks for stale planner statistics "
        "and runs ANALYZE (0 disables).",
    )
    max_content_length: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest accepted request body, in bytes (413 above)."
    )
    max_objects_per_envelope: int = Field(
        10_000, ge=1, description="Most objects one TAXII POST envelope may carry (413 above, before any is read)."
    )
    max_status_failures: int = Field(
        1_000,
        ge=1,
        description="Most failures a stored status resource lists; beyond it one final entry says how many more "
        "there were (the counts stay exact).",
    )
    max_page_size: int = Field(1000, ge=1, description="Largest page a TAXII GET returns; larger limits clamp.")
    default_page_size: int = Field(100, ge=1, description="Page size when the client sends no limit.")
    memory_release_seconds: float = Field(
        5.0,
        ge=0,
        description="How often each worker hands memory freed by the C allocator back to the system (glibc "
        "malloc_trim; 0 = never). Without it RSS creeps up with the requests served.",
    )
    read_ahead_pages: int = Field(
        8,
        ge=0,
        description="PostgreSQL: pages each worker reads ahead for clients paging through a collection, each up to "
        "IX_MAX_PAGE_SIZE objects in memory; served only if the collection and grants are unchanged (0 = off).",
    )
    max_detections_per_request: int = Field(
        10_000, ge=1, description="Most detections one ingest request, or events one match request, may carry."
    )
    match_indexes: int = Field(
        8,
        ge=1,
        description="Live match indexes a worker keeps (one per collections and clearance matched "
        "against), least recently used dropped first; each holds its indicators in memory.",
    )
    match_overlay_limit: int = Field(
        20_000,
        ge=1,
        description="Indicators changed since a match index's base was compiled before a new "
        "base is compiled in the background.",
    )
    default_requests_per_minute: int = Field(
        600, ge=0, description="Per-key request rate limit when the principal sets none (0 = unlimited)."
    )
    default_objects_per_day: int = Field(
        0, ge=0, description="Per-key daily object quota when the principal sets none (0 = unlimited)."
    )
    community_key: SecretStr = Field(
        SecretStr(DEMO_COMMUNITY_KEY),
        description="Shared secret keying prompt LSH bands and HMAC identifiers. Never logged or published.",
    )
    community_key_id: str = Field("community-2026-01", description="Public name of the community key.")
    organisation_name: str = Field("indicator-exchange demo lab", description="Publishing organisation.")
    identity_id: str = Field(
        "identity--b3d6a1f0-5c1e-4e0a-9d1f-0c2f4a6b8e21",
        description="STIX identity id of the publishing organisation (created_by_ref of our objects).",
    )
    scaffold_allowlist: str | None = Field(
        None,
        description='JSON file of public scaffold prompts ({"scaffolds": {name: text}}) refused at ingest, beside '
        "the built-in list.",
    )
    live_heartbeat_seconds: float = Field(
        15.0, gt=0, le=15, description="Longest a live stream stays silent: a heartbeat carries its position."
    )
    live_max_wait_seconds: int = Field(
        30, ge=0, le=30, description="Longest a TAXII poll with `Prefer: wait=N` is held (larger N are clamped)."
    )
    live_batch_size: int = Field(1000, ge=1, description="Most objects one live stream event carries.")
    live_max_waiters: int = Field(
        1000, ge=1, description="Open streams and held long polls per worker; beyond, a new stream is answered 503."
    )
    live_poll_seconds: float = Field(
        0.25, gt=0, description="SQLite (no NOTIFY): how often a worker with live waiters reads their clocks."
    )
    api_title: str = Field("indicator-exchange", description="TAXII discovery title.")
    contact: str | None = Field(None, description="TAXII discovery contact.")
    # Scale-out (docs/scaling.md).
    direct_database_url: str | None = Field(
        None,
        description="PostgreSQL behind a transaction-mode pooler (PgBouncer): IX_DATABASE_URL names the pooler and "
        "this the server itself, for what needs a session of its own (the event loop's connection, LISTEN/NOTIFY, "
        "the statistics keeper's lock). Set, IX_DATABASE_URL is treated as pooled: no session settings in the "
        "startup packet.",
    )
    read_replica_urls: str = Field(
        "",
        description="Comma-separated URLs of PostgreSQL streaming replicas that serve reads (polls, manifests, "
        "versions, pages read ahead, exports, reports, match index loads, stream batches), each only once it has "
        "replayed what the primary held when the read began; empty = every read from IX_DATABASE_URL.",
    )
    replica_max_lag_seconds: float = Field(
        5.0,
        gt=0,
        description="A replica further behind the primary than this (or down) is out of rotation until it catches up.",
    )
    replica_wait_seconds: float = Field(
        1.0,
        ge=0,
        description="How long a read waits for a replica to replay what the primary held when it began (the "
        "collection's clock and the auth epoch, or the client's X-IX-LSN) before it reads from the primary instead.",
    )
    replica_check_seconds: float = Field(
        1.0, gt=0, description="How often each worker measures its replicas' lag (and retries one that is down)."
    )
    log_format: str = Field(
        "text",
        pattern="^(text|json)$",
        description="`json`: one JSON object per log line, with the request id (X-Request-ID, also in the audit "
        "row); `text`: uvicorn's usual lines.",
    )
    lifecycle_file: str | None = Field(
        None,
        description="JSON file overriding the score model per indicator kind (tau, delta, threshold; "
        "docs/lifecycle.md). Checked at start.",
    )
    fp_quorum: int = Field(
        2, ge=1, description="Distinct organisations whose false-positive votes revoke one of our indicators."
    )
    warninglists: bool = Field(
        True, description="Check detections and enforced indicators against the warninglists (docs/lifecycle.md)."
    )
    warninglist_file: str | None = Field(
        None,
        description="JSON file of warninglist policies (refuse, flag or off per list) and operator lists. "
        "Checked at start.",
    )
    warninglist_max_prefix_v4: int = Field(
        16, ge=0, le=32, description="IPv4 ranges broader than this prefix length are refused at ingest."
    )
    warninglist_max_prefix_v6: int = Field(
        32, ge=0, le=128, description="IPv6 ranges broader than this prefix length are refused at ingest."
    )

    @field_validator("lifecycle_file")
    @classmethod
    def _lifecycle_file(cls, path: str | None) -> str | None:
        """A bad score-model file stops the service at start, with the entry that is wrong."""
        from indicator_exchange.lifecycle.model import load_decays

        load_decays(path)
        return path or None

    @field_validator("warninglist_file")
    @classmethod
    def _warninglist_file(cls, path: str | None) -> str | None:
        from indicator_exchange.lifecycle.warninglists import check_file

        check_file(path)
        return path or None

    @field_validator("scaffold_allowlist")
    @classmethod
    def _readable_allowlist(cls, path: str | None) -> str | None:
        """A broken allowlist stops the service at start, not at the first prompt detection."""
        if not path:
            return None
        try:
            scaffolds = json.loads(Path(path).read_text(encoding="utf-8")).get("scaffolds")
        except (OSError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path!r} is not a readable JSON object: {exc}") from None
        if not isinstance(scaffolds, dict) or not all(isinstance(v, str) for v in scaffolds.values()):
            raise ValueError(f'{path!r} must hold {{"scaffolds": {{"name": "prompt text", ...}}}}')
        return path

    @field_validator("metrics_clients", "trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        """A typo in a CIDR stops the service at start instead of silently trusting no one (or everyone)."""
        parse_networks(value)
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"{value!r} must be scheme://host[:port] with no path, query or fragment")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} must be scheme://host[:port] with no path, query or fragment")
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def connections_per_worker(self) -> int:
        """IX_DB_CONNECTIONS_PER_WORKER, or what the deprecated IX_DB_POOL_SIZE meant (pool plus overflow)."""
        if "db_connections_per_worker" not in self.model_fields_set and self.db_pool_size is not None:
            return max(4, 2 * self.db_pool_size)
        return self.db_connections_per_worker

    @property
    def session_database_url(self) -> str:
        """Where connections that need a session of their own go: the server itself, not a pooler."""
        return self.direct_database_url or self.database_url

    @property
    def database_pooled(self) -> bool:
        return self.direct_database_url is not None

    @property
    def replica_urls(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.read_replica_urls.split(",") if part.strip())

    @property
    def metrics_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.metrics_clients)

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def community_key_bytes(self) -> bytes:
        """The community key as the fingerprint and HMAC functions take it."""
        return self.community_key.get_secret_value().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use (never at import time)."""
    return Settings()
