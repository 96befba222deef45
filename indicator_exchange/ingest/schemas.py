"""The detection contract: what internal detectors push (exported to ``schemas/detection.schema.json``).

Raw prompt text and PII identifiers are accepted here and used in memory only: they are fingerprinted or
HMAC-hashed before anything is stored, and never appear in errors, logs or responses.
"""

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from indicator_exchange.fields import Count32, Count64, NulFree
from indicator_exchange.stix.identifiers import identifier_problem

TlpName = Literal["clear", "green", "amber", "amber+strict", "red"]
ProxyKindName = Literal["residential", "mobile", "datacenter", "isp", "vpn", "tor", "unknown"]
Capability = Literal[
    "cot-elicitation", "rubric-grading", "agentic-coding", "tool-use", "censorship-probing", "computer-vision", "other"
]
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class _Detection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    detector: NulFree = Field(min_length=1, max_length=128, description="Name of the detector that found this.")
    first_seen: AwareDatetime = Field(description="Start of the observed window (RFC 3339 with offset).")
    last_seen: AwareDatetime = Field(description="End of the observed window.")
    confidence: StrictInt = Field(ge=0, le=100, description="0-100, round(100 x calibrated probability).")
    tlp: TlpName = Field(
        "amber",
        description="TLP 2.0 level to publish under. Raised, never lowered, where a rule requires it: hashed "
        "identifiers (account_pattern identifiers) are published at amber+strict at least; the cluster's campaign "
        "and its 'uses' relationships at amber at least; a re-detection of a stored indicator or campaign keeps "
        "the stored marking (a new version never changes it; for an indicator, revoke with false_positive and "
        "re-detect to change it). Each such adjustment is reported in the line's 'adjusted'.",
    )
    cluster: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="Campaign (hydra cluster) key; links indicators. The campaign is never below TLP:AMBER.",
    )
    valid_until: AwareDatetime | None = Field(None, description="Overrides the default lifetime of the kind.")
    description: NulFree | None = Field(None, max_length=2000, description="Free text shared with the indicator.")
    accounts_linked: Count32 | None = Field(None, description="Accounts linked to this observable.")
    requests: Count64 | None = Field(None, description="Requests observed.")
    false_positive: bool = Field(False, description="True revokes the indicator this detection produced before.")

    @model_validator(mode="after")
    def _window(self) -> "_Detection":
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen is before first_seen")
        if self.valid_until is not None and self.valid_until <= self.first_seen:
            raise ValueError("valid_until must be after first_seen")
        return self


class ProxyIpDetection(_Detection):
    """A proxy exit address, a CIDR range (IPv4 or IPv6) or an autonomous system."""

    kind: Literal["proxy_ip"]
    value: str | None = Field(None, description="IPv4/IPv6 address or CIDR range.", examples=["46.91.113.57"])
    asn: int | None = Field(None, ge=1, le=4_294_967_295, description="Autonomous system number.")
    proxy_kind: ProxyKindName = Field(
        "unknown",
        description="Kind of proxy network. A re-detection of a stored indicator keeps its stored proxy_kind (the "
        "first classification wins; the new kind joins its labels), reported in the line's 'adjusted'.",
    )

    @field_validator("value")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            if "/" not in value:  # a single address: the same text as below, at a third of the cost
                return str(ipaddress.ip_address(value))
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError("value must be an IPv4 or IPv6 address or CIDR range") from None
        return str(network.network_address) if network.num_addresses == 1 else network.compressed

    @model_validator(mode="after")
    def _one(self) -> "ProxyIpDetection":
        if (self.value is None) == (self.asn is None):
            raise ValueError("give exactly one of value (address or range) and asn")
        return self


class PromptSignatureDetection(_Detection):
    """An extraction prompt: its text (fingerprinted in memory, never stored) or a precomputed SHA-256."""

    kind: Literal["prompt_signature"]
    prompt_text: str | None = Field(
        None, min_length=1, max_length=100_000, repr=False, description="Raw prompt; used in memory only."
    )
    prompt_sha256: str | None = Field(
        None, pattern=r"^[a-f0-9]{64}$", description="SHA-256 of the llmsig-norm-v1 normalised prompt."
    )
    capability: Capability = "other"

    @model_validator(mode="after")
    def _one(self) -> "PromptSignatureDetection":
        if (self.prompt_text is None) == (self.prompt_sha256 is None):
            raise ValueError("give exactly one of prompt_text and prompt_sha256")
        return self


class SignupCadence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=2, le=1_000_000, description="Signups …")
    within_seconds: int = Field(ge=1, le=31_536_000, description="… within this many seconds.")
    email_domain: str = Field(description="On this email domain.")

    @field_validator("email_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.strip().casefold()
        if not _DOMAIN.match(value):
            raise ValueError("email_domain must be a domain name")
        return value


class HashedIdentifier(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    """An identifier as raw PII (hashed by ingestion) or as the publisher's own HMAC of it (used as given), so a
    detector can share identifiers without writing PII."""

    type: Literal["email", "email-domain", "phone", "payment-instrument", "device"]
    value: str | None = Field(
        None, min_length=1, max_length=512, repr=False, description="PII; HMAC-hashed before storage."
    )
    hmac: str | None = Field(
        None,
        pattern=r"^[a-f0-9]{64}$",
        description="HMAC-SHA256 under the community key of type + ':' + the normalised value, as lowercase hex "
        "(what ingestion computes from 'value'); stored as given.",
    )

    @model_validator(mode="after")
    def _one(self) -> "HashedIdentifier":
        if (self.value is None) == (self.hmac is None):
            raise ValueError("give exactly one of value and hmac")
        problem = identifier_problem(self.type, self.value) if self.value is not None else None
        if problem is not None:
            raise ValueError(problem)  # never hashed: garbage would be shared as an identifier
        return self


class AccountPatternDetection(_Detection):
    """Account signals: throwaway domains, a login shape, a signup cadence, or hashed PII identifiers."""

    kind: Literal["account_pattern"]
    email_domains: list[str] | None = Field(None, min_length=1, max_length=500)
    login_regex: NulFree | None = Field(None, min_length=1, max_length=512)
    cadence: SignupCadence | None = None
    identifiers: list[HashedIdentifier] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="PII identifiers, HMAC-hashed under the community key; the indicator is published at "
        "TLP:AMBER+STRICT at least, whatever 'tlp' asks (reported in 'adjusted').",
    )

    @field_validator("email_domains")
    @classmethod
    def _domains(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = sorted({d.strip().casefold() for d in value})
        if any(not _DOMAIN.match(d) for d in cleaned):
            raise ValueError("email_domains must be domain names")
        return cleaned

    @field_validator("login_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"login_regex does not compile: {exc.msg}") from None
        return value

    @model_validator(mode="after")
    def _one(self) -> "AccountPatternDetection":
        given = [self.email_domains, self.login_regex, self.cadence, self.identifiers]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of email_domains, login_regex, cadence and identifiers")
        return self


Detection = Annotated[
    ProxyIpDetection | PromptSignatureDetection | AccountPatternDetection, Field(discriminator="kind")
]

Outcome = Literal["created", "versioned", "unchanged", "revoked", "rejected"]


class DetectionError(BaseModel):
    field: str
    message: str


class DetectionOutcome(BaseModel):
    """What became of one input line."""

    line: int
    outcome: Outcome
    stix_ids: list[str] = Field(default_factory=list)
    adjusted: list[str] = Field(
        default_factory=list,
        description="Where what was published differs from what the line asked for, one message each, saying "
        "why: a TLP raised by a rule (hashed identifiers: amber+strict; campaigns: amber), or a stored "
        "indicator's TLP or proxy_kind kept by a re-detection.",
    )
    error: DetectionError | None = None


class IngestSummary(BaseModel):
    created: int = 0
    versioned: int = 0
    unchanged: int = 0
    revoked: int = 0
    rejected: int = 0


class IngestResult(BaseModel):
    """The answer to ``POST /api/v1/detections``: one outcome per input line, in input order."""

    collection_id: str
    summary: IngestSummary
    results: list[DetectionOutcome]
