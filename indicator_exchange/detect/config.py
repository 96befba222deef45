"""Every threshold and limit of the detector, each a setting (``IX_DETECT_*``) with a documented default.

The defaults are argued in ``docs/detect.md``; the README lists them. Precision comes first: each default leans
towards not flagging.
"""

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DetectConfig(BaseSettings):
    """Thresholds of the four signals, the agreement rule, and the bounds on the detector's memory."""

    model_config = SettingsConfigDict(env_prefix="IX_DETECT_", extra="ignore")

    # Window and buckets.
    window_seconds: int = Field(86_400, ge=60, le=31 * 86_400, description="Analysis window (--window).")
    bucket_seconds: int = Field(3_600, ge=10, description="Time bucket of the synchronisation signal.")
    max_lag_seconds: int = Field(3_600, ge=0, description="How far a line may go back in time before it is refused.")
    max_line_bytes: int = Field(1_048_576, ge=1024, description="Longest input line; longer lines are refused.")

    # Prompt families.
    family_min_accounts: int = Field(8, ge=2, description="A prompt family counts once it spans this many accounts.")
    family_min_bands: int = Field(2, ge=1, le=16, description="Band keys a prompt must share to join a family.")
    family_max_keys: int = Field(4096, ge=16, description="LSH band keys kept per family (bounds its memory).")
    family_max_accounts: int = Field(200_000, ge=16, description="Accounts counted per family (bounds its memory).")
    family_samples: int = Field(64, ge=1, description="Distinct prompt texts kept in memory per family to publish.")
    prune_every: int = Field(100_000, ge=1000, description="Prompts between sweeps of one-prompt families.")

    # Infrastructure synchronisation.
    sync_min_buckets: int = Field(2, ge=1, description="Buckets in which family accounts must share a key.")
    sync_min_lift: float = Field(
        5.0, ge=1.0, description="How much a key's family share must exceed the family's population share."
    )
    sync_min_purity: float = Field(
        0.5, gt=0.0, le=1.0, description="Or: the share of a key's accounts the family must hold (large families)."
    )
    key_max_accounts: int = Field(20_000, ge=16, description="Accounts tracked per address, range or ASN.")

    # Registration waves.
    wave_seconds: int = Field(600, ge=10, description="Short window in which signups are counted.")
    wave_min_signups: int = Field(10, ge=2, description="Fewest signups in one short window that can be a wave.")
    wave_factor: float = Field(10.0, ge=1.0, description="A wave is this many times the key's own mean rate.")

    # Capability focus.
    focus_min: float = Field(0.3, ge=0.0, le=1.0, description="Share of an account's prompts in counted families.")

    # Agreement and output.
    cluster_min_accounts: int = Field(5, ge=2, description="Fewest accounts a reported cluster holds.")
    agree_min_share: float = Field(
        0.5, ge=0.0, le=1.0, description="Share of members a second signal (infra or wave) must cover."
    )
    indicator_min_share: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of an address's accounts the cluster must hold to publish it."
    )
    range_min_share: float = Field(0.8, gt=0.0, le=1.0, description="The same for a /24, /48 or an ASN.")
    identifier_min_accounts: int = Field(
        3, ge=2, description="Cluster accounts that must share a hashed identifier to publish it."
    )
    max_prompt_signatures: int = Field(20, ge=0, description="Prompt signatures published per cluster.")

    @model_validator(mode="after")
    def _buckets_fit(self) -> "DetectConfig":
        if self.bucket_seconds > self.window_seconds:
            raise ValueError("bucket_seconds must not exceed window_seconds")
        if self.window_seconds // self.bucket_seconds > 1024:
            raise ValueError("a window holds at most 1,024 buckets")
        return self
