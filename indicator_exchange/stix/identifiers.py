"""Account identifiers shared as keyed hashes: normalised, then HMAC-SHA256 under the community key (D4)."""

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Literal

IdentifierType = Literal["email", "email-domain", "phone", "payment-instrument", "device"]


@dataclass(frozen=True, slots=True)
class Identifier:
    """A raw value (hashed here) or its HMAC already computed by the publisher (used as given)."""

    type: IdentifierType
    value: str | None = field(default=None, repr=False)
    hmac: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.hmac is None):
            raise ValueError("an identifier carries exactly one of value and hmac")

    def digest(self, key: bytes) -> str:
        if self.value is None:
            return str(self.hmac)
        return hmac_identifier(key, self.type, self.value)


def hmac_identifier(key: bytes, identifier_type: str, value: str) -> str:
    """HMAC-SHA256(community key, type + ":" + normalised value) as hex (docs/design.md#d4-account-patterns)."""
    return hmac.new(
        key, f"{identifier_type}:{normalise_identifier(identifier_type, value)}".encode(), hashlib.sha256
    ).hexdigest()


def normalise_identifier(identifier_type: str, value: str) -> str:
    """Trim and casefold (emails, domains, devices, payment fingerprints); phones keep digits and a leading +."""
    value = value.strip()
    if identifier_type == "phone":
        digits = re.sub(r"[^0-9]", "", value)
        return ("+" if value.startswith("+") else "") + digits
    return value.casefold()
