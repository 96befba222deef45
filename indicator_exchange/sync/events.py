"""API-traffic events to match (``schemas/match-event.schema.json``) and the matches found."""

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

IdentifierType = Literal["email", "email-domain", "phone", "payment-instrument", "device"]
IndicatorKind = Literal["proxy_ip", "prompt_signature", "account_pattern", "other"]
EventType = Literal["request", "signup"]


class TrafficEvent(BaseModel):
    """One request (or signup) seen on our API. Every field but ``timestamp`` is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: AwareDatetime
    event_type: EventType = Field(
        "request", description="'request' (an API call, the default) or 'signup' (an account was created)."
    )
    event_id: str | None = Field(None, max_length=256, description="Your id for the event, echoed in matches.")
    source_ip: str | None = Field(None, description="Client IPv4 or IPv6 address.")
    asn: int | None = Field(None, ge=0, description="Autonomous system of source_ip, if enriched.")
    account_id: str | None = Field(None, max_length=256)
    account_login: str | None = Field(None, max_length=256)
    email: str | None = Field(None, max_length=320)
    prompt_text: str | None = Field(None, repr=False, description="Used in memory to fingerprint; never stored.")
    prompt_sha256: str | None = Field(None, pattern=r"^[a-f0-9]{64}$")
    api_key_id: str | None = Field(None, max_length=256)
    identifiers: dict[IdentifierType, str] | None = Field(
        None, repr=False, description="PII by type; HMAC-hashed in memory with the community key."
    )
    user_agent: str | None = Field(None, max_length=1024, description="Client User-Agent header.")
    model: str | None = Field(None, max_length=256, description="Model the request asked for.")
    output_tokens: int | None = Field(None, ge=0, description="Tokens the answer held.")


class Match(BaseModel):
    """One (event, indicator) pair that matched."""

    event_index: int = Field(description="0-based position of the event in the input.")
    event_id: str | None = None
    timestamp: datetime
    indicator_id: str
    kind: IndicatorKind
    campaign_ids: list[str] = Field(default_factory=list)
    matched: str = Field(description="What matched, e.g. 'ipv4-addr:value ISSUBSET 198.51.100.0/24'.")
    verified: bool = Field(True, description="False for a single shared LSH band (a candidate, not a verdict).")
