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


# E.164-ish: an optional leading +, then digits and the separators people write (space - . ( )).
_PHONE = re.compile(r"\+?[0-9 .()\-]+")
PHONE_DIGITS = range(6, 16)  # 6 to 15 digits: short national numbers up to E.164's maximum


class InvalidIdentifier(ValueError):
    """An identifier value that is not what its type says; the message never quotes the value (PII)."""


def identifier_problem(identifier_type: str, value: str) -> str | None:
    """Why ``value`` cannot be an identifier of ``identifier_type``, or ``None`` when it can.

    Only phones have a shape to check: otherwise any text would hash as its digits ("call me at 5" as "5",
    "abc" as ""), and garbage would be shared as an identifier. The reason never quotes the value.
    """
    if identifier_type != "phone":
        return None
    value = value.strip()
    if not _PHONE.fullmatch(value):
        return "phone: not a phone number (an optional +, digits and the separators space - . ( ))"
    if sum(c.isdigit() for c in value) not in PHONE_DIGITS:
        return f"phone: a phone number has {PHONE_DIGITS.start} to {PHONE_DIGITS.stop - 1} digits"
    return None


def normalise_identifier(identifier_type: str, value: str) -> str:
    """Trim and casefold (emails, domains, devices, payment fingerprints); phones keep digits and a leading +.

    ``InvalidIdentifier`` for a phone that does not look like one (``identifier_problem``): the paths where
    identifiers come in check first and report it per line or per detection, this is the last guard.
    """
    value = value.strip()
    if identifier_type == "phone":
        problem = identifier_problem(identifier_type, value)
        if problem is not None:
            raise InvalidIdentifier(problem)
        digits = re.sub(r"[^0-9]", "", value)
        return ("+" if value.startswith("+") else "") + digits
    return value.casefold()
