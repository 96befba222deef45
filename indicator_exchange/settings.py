"""Service configuration, read from ``IX_*`` environment variables (or a ``.env`` file)."""

import json
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./indicator-exchange.db"
DEMO_COMMUNITY_KEY = "demo-community-key-change-me"


class Settings(BaseSettings):
    """Every tunable of the service; documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="IX_", env_file=".env", extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the store.")
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connection-pool size per worker.")
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
    max_detections_per_request: int = Field(10_000, ge=1, description="Most detections one ingest request may carry.")
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
    api_title: str = Field("indicator-exchange", description="TAXII discovery title.")
    contact: str | None = Field(None, description="TAXII discovery contact.")

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

    @property
    def community_key_bytes(self) -> bytes:
        """The community key as the fingerprint and HMAC functions take it."""
        return self.community_key.get_secret_value().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use (never at import time)."""
    return Settings()
