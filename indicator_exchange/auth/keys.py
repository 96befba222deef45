"""API keys: a public key id plus a random 256-bit secret, stored hashed and compared in constant time.

A fast hash is right here (unlike passwords): the secret is uniformly random, so there is nothing to guess.
Clients send keys as HTTP Basic (key id as user name, secret as password — what taxii2-client sends) or as
``Authorization: Bearer <key id>.<secret>``.
"""

import base64
import hashlib
import hmac
import secrets

KEY_ID_PREFIX = "ixk_"


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, secret)``; the secret is shown once and never stored."""
    return KEY_ID_PREFIX + secrets.token_hex(8), secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def bearer_token(key_id: str, secret: str) -> str:
    return f"{key_id}.{secret}"


def parse_authorization(header: str | None) -> tuple[str, str] | None:
    """``(key_id, secret)`` from a Basic or Bearer ``Authorization`` header, or ``None`` if unusable."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text (a header sent as Latin-1)
            return None
        key_id, sep, secret = decoded.partition(":")
    elif scheme.lower() == "bearer":
        key_id, sep, secret = value.partition(".")
    else:
        return None
    if not sep or not key_id or not secret:
        return None
    return key_id, secret
