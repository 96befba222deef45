"""Query parameters of TAXII reads (TAXII 2.1 §3.4): parsed strictly, refused with 400 when malformed."""

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from indicator_exchange.errors import BadRequest
from indicator_exchange.read_routes import ALL_MATCHES, parse_filter
from indicator_exchange.store.read_filter import ReadFilter

# A position is a date_added in µs: a bigint in the store. Canonical decimal only (no sign, no leading zero),
# at most 19 digits and at most 2**63 - 1, so a bound in SQL is always a bigint, never a numeric.
_POSITION = re.compile(r"0|[1-9][0-9]{0,18}")
_MAX_POSITION = 2**63 - 1
_CURSOR_PREFIX = "ix2:"
_LEGACY_PREFIX = "ix1:"  # tokens before binding: still parsed (the audit trail replays them), never honoured
_TAG_BYTES = 8
# The longest token this server issues, base64 of "ix2:<19 digits>:<16 hex digits>"; anything longer is refused
# before it is decoded.
_MAX_TOKEN_LENGTH = 4 * -(-(len(_CURSOR_PREFIX) + 19 + 1 + 2 * _TAG_BYTES) // 3)


@dataclass(frozen=True, slots=True)
class Cursor:
    """A decoded ``next`` token: the position it continues after and its binding tag (``None``: a legacy
    token, which no read accepts)."""

    position: int
    tag: str | None


@dataclass(frozen=True, slots=True)
class PageRequest:
    filters: ReadFilter  # with the page size (``limit``) set
    after: int | None  # the stricter of added_after and the cursor position
    cursor: Cursor | None = None

    @property
    def limit(self) -> int:
        return self.filters.limit or 1


def cursor_tag(collection_id: uuid.UUID, filters: ReadFilter, position: int) -> str:
    """The binding of a token: a hash of the collection, the normalised filters and the position.

    Not keyed with a secret, on purpose: a token grants nothing (every read is authorised afresh and filtered
    by grants and TLP in SQL, and ``added_after`` reaches any position anyway), so the point is to refuse a
    token used with another collection or other filters instead of silently reinterpreting it. A plain hash
    needs no secret shared by every worker and instance, and no rotation that would break tokens in flight.
    ``added_after`` is not bound: it and the token are both lower bounds of the same position, the stricter
    wins, so changing one beside the other reinterprets nothing.
    """
    normalised = (
        str(collection_id),
        None if filters.ids is None else sorted(set(filters.ids)),
        None if filters.types is None else sorted(set(filters.types)),
        None if filters.spec_versions is None else sorted(set(filters.spec_versions)),
        sorted(set(filters.version_keywords)),
        sorted(set(filters.version_values)),
        position,
    )
    digest = hashlib.blake2b(orjson.dumps(normalised), digest_size=_TAG_BYTES, person=b"ix-next-token-v2")
    return digest.hexdigest()


def encode_cursor(collection_id: uuid.UUID, filters: ReadFilter, date_added: int) -> str:
    """An opaque, stateless ``next`` token: the position after which the next page starts, bound to the
    collection and the filters of the read that issued it."""
    return _encoded(f"{_CURSOR_PREFIX}{date_added}:{cursor_tag(collection_id, filters, date_added)}")


def _encoded(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """The form of a token, checked strictly (``BadRequest`` otherwise); its binding is checked by the read
    (``check_cursor``), which knows the collection."""
    refused = BadRequest(f"'next' value {token[:80]!r} is not a token this server issued")
    if len(token) > _MAX_TOKEN_LENGTH or not token.isascii():
        raise refused
    try:
        text = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    if _encoded(text) != token:  # one token per position: no padding, no stray bits
        raise refused
    tag: str | None
    if text.startswith(_CURSOR_PREFIX):
        digits, _, tag = text[len(_CURSOR_PREFIX) :].partition(":")
        if len(tag) != 2 * _TAG_BYTES or any(c not in "0123456789abcdef" for c in tag):
            raise refused
    elif text.startswith(_LEGACY_PREFIX):
        digits, tag = text[len(_LEGACY_PREFIX) :], None
    else:
        raise refused
    if not _POSITION.fullmatch(digits) or int(digits) > _MAX_POSITION:
        raise refused
    return Cursor(position=int(digits), tag=tag)


def check_cursor(page: PageRequest, collection_id: uuid.UUID, filters: ReadFilter) -> None:
    """``BadRequest`` unless the page's token (if any) was issued for this collection and these filters
    (``filters``: those of the read, with the object of an object's URL as its id)."""
    cursor = page.cursor
    if cursor is None:
        return
    if cursor.tag is None or not hmac.compare_digest(cursor.tag, cursor_tag(collection_id, filters, cursor.position)):
        raise BadRequest(
            "'next' token was not issued for this collection and these filters: repeat the filters of the "
            "request that returned it, or start again without 'next'"
        )


def parse_page_request(
    params: Mapping[str, list[str]],
    *,
    default_limit: int,
    max_limit: int,
    allow: frozenset[str] = ALL_MATCHES,
) -> PageRequest:
    """The filters, page size and start position of one read; unknown parameters are ignored."""
    filters = parse_filter(params, allow=allow, default_limit=default_limit, max_limit=max_limit)
    after = filters.added_after
    cursor = decode_cursor(params["next"][-1]) if "next" in params else None
    if cursor is not None:
        after = cursor.position if after is None else max(after, cursor.position)
    return PageRequest(filters=filters, after=after, cursor=cursor)
