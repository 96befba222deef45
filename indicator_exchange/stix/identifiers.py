"""Account identifiers shared as keyed hashes: normalised, then HMAC-SHA256 under the community key (D4)."""

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Literal

IdentifierType = Literal["email", "email-domain", "phone", "payment-instrument", "device"]


@dataclass(frozen=True, slots=True)
class Identifier:
    type: IdentifierType
    value: str = field(repr=False)


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
