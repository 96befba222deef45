"""The typed inputs of a conversion: who publishes, and one detection of each kind with its common part."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from indicator_exchange.stix.fingerprint import PromptFingerprint
from indicator_exchange.stix.identifiers import Identifier
from indicator_exchange.stix.markings import Tlp

ProxyKind = Literal["residential", "mobile", "datacenter", "isp", "vpn", "tor", "unknown"]


@dataclass(frozen=True, slots=True)
class Publisher:
    """Who we are when we publish: the identity every object we create names as ``created_by_ref``."""

    identity_id: str
    organisation: str
    community_key: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class Common:
    detector: str
    first_seen: datetime
    last_seen: datetime
    confidence: int
    tlp: Tlp
    cluster: str | None = None
    valid_until: datetime | None = None
    description: str | None = None
    accounts_linked: int | None = None
    requests: int | None = None


@dataclass(frozen=True, slots=True)
class ProxyInput:
    common: Common
    proxy_kind: ProxyKind
    value: str | None = None  # an address or CIDR range
    asn: int | None = None


@dataclass(frozen=True, slots=True)
class PromptInput:
    common: Common
    capability: str
    sha256: str
    fingerprint: PromptFingerprint | None = None  # None when only a SHA-256 was sent (exact match only)


@dataclass(frozen=True, slots=True)
class Cadence:
    count: int
    within_seconds: int
    email_domain: str


@dataclass(frozen=True, slots=True)
class AccountInput:
    common: Common
    email_domains: tuple[str, ...] = ()
    login_regex: str | None = None
    cadence: Cadence | None = None
    identifiers: tuple[Identifier, ...] = ()


DetectionInput = ProxyInput | PromptInput | AccountInput
