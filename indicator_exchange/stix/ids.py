"""Deterministic ids and STIX timestamps: the same detection always names the same objects (D7)."""

import hashlib
import uuid
from datetime import UTC, datetime
from functools import lru_cache

import orjson

# Our own UUIDv5 namespace for SDOs/SROs (docs/design.md#d7-deterministic-ids); never the SCO namespace.
SERVICE_NAMESPACE = uuid.UUID("6f1c3b0e-2a44-5e7d-9c1b-8d2f4e6a0b13")


@lru_cache(maxsize=1024)  # one request stamps thousands of objects with the same few moments
def stix_timestamp(moment: datetime) -> str:
    """Millisecond precision, as the stix2 library writes ``created``/``modified``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@lru_cache(maxsize=1024)
def stix_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deterministic_id(stix_type: str, *parts: str | int) -> str:
    """UUIDv5 in our namespace over a JSON array of the type and the identifying parts
    (docs/design.md#d7-deterministic-ids).

    Computed as RFC 4122 §4.3 does (SHA-1 of namespace + name, version and variant bits set) without
    building ``uuid.UUID`` objects: ids are minted several times per detection. A test holds it to
    ``uuid.uuid5``. The name is the compact, non-ASCII-preserving JSON of the ``json`` module; orjson writes
    the same bytes for strings and integers (a test checks every character) at a tenth of the cost.
    """
    name = orjson.dumps([stix_type, *parts])
    digest = bytearray(hashlib.sha1(SERVICE_NAMESPACE.bytes + name).digest()[:16])  # noqa: S324 - UUIDv5
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{stix_type}--{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
