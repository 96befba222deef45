"""Streaming JSONL reader of traffic events: one pass, one line at a time, every bad line reported.

A line becomes an ``Event`` or a ``LineError`` (line number, reason), never an exception and never silence:
malformed JSON, unknown fields, wrong types, out-of-order timestamps beyond ``max_lag_seconds`` and lines
longer than ``max_line_bytes`` are each reported. Reasons never echo the line's content (it may hold a prompt
or PII).

The common line is decoded and checked in one call by a ``msgspec`` struct that mirrors
``schemas/match-event.schema.json`` strictly (the pydantic model costs about as much as the whole detector per
event); any line it does not accept goes through ``TrafficEvent`` itself, so the two can only disagree in the
direction of the model.
"""

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Annotated, Any, Literal

import msgspec
import orjson
from pydantic import ValidationError

from indicator_exchange.match.events import TrafficEvent
from indicator_exchange.stix.identifiers import hmac_identifier

_KNOWN = frozenset(TrafficEvent.model_fields)


@dataclass(slots=True)
class Event:
    """What the detector keeps of one line: no raw PII beyond the email's domain."""

    line: int
    ts: float
    signup: bool
    account: str | None
    ip: str | None
    net: str | None
    asn: int | None
    email_domain: str | None
    prompt: str | None
    login: str | None = None
    """In memory only: the detector keeps its shape (``signals.logins``), never the login."""
    identifiers: tuple[str, ...] = ()
    """The line's ``identifiers`` as '<type>:<HMAC>' under the community key, hashed as the line is read: the
    raw values are never kept."""


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str


class _Networks:
    """Address -> (canonical address, /24 or /48), cached: most traffic comes from addresses seen before."""

    def __init__(self, limit: int = 1 << 18) -> None:
        self.cache: dict[str, tuple[str, str] | None] = {}
        self._limit = limit

    def get(self, text: str) -> tuple[str, str] | None:
        found = self.cache.get(text, False)
        if found is not False:
            return found  # type: ignore[return-value]
        value = _dotted_quad(text)
        if value is not None:
            self._remember(text, value)
            return value
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            value = None
        else:
            prefix = 24 if address.version == 4 else 48
            net = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
            value = (str(address), str(net))
        self._remember(text, value)
        return value

    def _remember(self, text: str, value: tuple[str, str] | None) -> None:
        if len(self.cache) >= self._limit:
            self.cache.clear()  # a plain reset keeps the bound; the next lines refill it
        self.cache[text] = value


def _dotted_quad(text: str) -> tuple[str, str] | None:
    """The common case without ``ipaddress`` (a third of the reader's time): four decimal octets, no zero
    padding. Anything else answers None and goes the slow, exact way."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not part.isdigit() or not part.isascii() or (len(part) > 1 and part[0] == "0") or int(part) > 255:
            return None
    return text, f"{parts[0]}.{parts[1]}.{parts[2]}.0/24"


_S256 = Annotated[str, msgspec.Meta(max_length=256)]
_COUNT = Annotated[int, msgspec.Meta(ge=0)]


class _Line(msgspec.Struct, forbid_unknown_fields=True):
    """The common line, decoded and checked in C against the schema's types and bounds.

    A strict subset of ``TrafficEvent``: no coercion (``"7"`` is not an ASN here), no ``identifiers`` and the
    timestamp left as text. A line this refuses is not refused yet: it goes through the model itself, which
    either accepts it (coerced) or says why not.
    """

    timestamp: str
    event_type: Literal["request", "signup"] = "request"
    event_id: _S256 | None = None
    source_ip: str | None = None
    asn: _COUNT | None = None
    account_id: _S256 | None = None
    account_login: _S256 | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    prompt_text: str | None = None
    prompt_sha256: Annotated[str, msgspec.Meta(min_length=64, max_length=64, pattern="^[a-f0-9]+$")] | None = None
    api_key_id: _S256 | None = None
    user_agent: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    model: _S256 | None = None
    output_tokens: _COUNT | None = None


_DECODE = msgspec.json.Decoder(_Line).decode


def _reason(exc: ValidationError) -> str:
    # pydantic's message without the input value: the field and what is wrong with it.
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    return f"{where}: {first['msg']}"


_MINUTES: dict[str, int] = {}
"""'YYYY-MM-DDTHH:MM' -> its epoch second (bounded: a log spans few minutes per line)."""


def _timestamp(value: object) -> float | None:
    if type(value) is not str:
        return None
    # The common stamp, 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z', by its minute (cached) and its seconds; the same
    # float as ``datetime.timestamp()`` gives. Anything else goes through ``fromisoformat``.
    if len(value) in (20, 27) and value[-1] == "Z" and value[16] == ":":
        base = _MINUTES.get(value[:16])
        rest = value[17:-1]
        if base is not None and rest.isascii() and rest[:2].isdigit() and rest[:2] < "60":
            if len(rest) == 2:
                return float(base + int(rest))
            if rest[2] == "." and rest[3:].isdigit():
                return ((base + int(rest[:2])) * 1_000_000 + int(rest[3:])) / 1_000_000
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    if len(value) in (20, 27) and value[-1] == "Z" and parsed.second < 60:
        if len(_MINUTES) >= 1 << 16:
            _MINUTES.clear()
        _MINUTES[value[:16]] = int(parsed.replace(second=0, microsecond=0).timestamp())
    return parsed.timestamp()


def _checked(raw: bytes, number: int) -> tuple[dict[str, Any], float] | LineError | None:
    """The slow, exact way for a line the fast decoder refused: its fields (coerced by the model) and time,
    the reason it is refused, or None for a blank line."""
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return LineError(number, "not valid JSON")
    if type(data) is not dict:
        return LineError(number, "not a JSON object")
    if not _KNOWN.issuperset(data):
        unknown = data.keys() - _KNOWN
        return LineError(number, f"unknown field(s): {', '.join(sorted(unknown)[:5])}")
    try:
        event = TrafficEvent.model_validate(data)
    except ValidationError as exc:
        return LineError(number, _reason(exc))
    return event.model_dump(exclude_none=True, mode="python"), event.timestamp.timestamp()


def read_events(
    stream: IO[bytes], *, max_line_bytes: int, max_lag_seconds: float, key: bytes | None = None
) -> Iterator[Event | LineError]:
    """Every non-blank line of ``stream`` as an ``Event`` or a ``LineError``, in order.

    With ``key`` (the community key) a line's identifiers are kept as their HMACs (what ingestion and ``match``
    compute); without it they are not kept at all. Lines with identifiers take the model's path (the fast
    decoder has no such field), so the common line stays fast."""
    networks = _Networks()
    cached = networks.cache
    decode = _DECODE
    latest = float("-inf")
    number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line without holding it
                raw = stream.readline(max_line_bytes + 1)
            yield LineError(number, f"line longer than {max_line_bytes:,} bytes")
            continue
        try:
            line: _Line | None = decode(raw)
        except msgspec.MsgspecError:
            line = None
        ts = _timestamp(line.timestamp) if line is not None else None
        if line is not None and ts is not None:
            signup = line.event_type == "signup"
            login = line.account_login
            # No account id: the login or the API key stands for the account (one of them names it).
            account = line.account_id or login or line.api_key_id
            source, asn, email, prompt = line.source_ip, line.asn, line.email, line.prompt_text
            hashed: tuple[str, ...] = ()
        else:
            found = _checked(raw, number)
            if found is None:
                continue
            if isinstance(found, LineError):
                yield found
                continue
            data, ts = found
            signup = data.get("event_type") == "signup"
            login = data.get("account_login")
            account = data.get("account_id") or login or data.get("api_key_id")
            source, asn, email, prompt = (
                data.get("source_ip"),
                data.get("asn"),
                data.get("email"),
                data.get("prompt_text"),
            )
            given: dict[str, str] | None = data.get("identifiers")
            hashed = (
                tuple(sorted({f"{kind}:{hmac_identifier(key, kind, value)}" for kind, value in given.items()}))
                if given and key is not None
                else ()
            )
        if ts < latest - max_lag_seconds:
            yield LineError(
                number, f"timestamp {latest - ts:,.0f} s before the latest seen (tolerance {max_lag_seconds:,.0f} s)"
            )
            continue
        if ts > latest:
            latest = ts
        ip = net = None
        if source is not None:
            place = cached.get(source) or networks.get(source)
            if place is None:
                yield LineError(number, "source_ip: not an IPv4 or IPv6 address")
                continue
            ip, net = place
        domain = email.rpartition("@")[2].strip().casefold() or None if email and "@" in email else None
        yield Event(number, ts, signup, account, ip, net, asn, domain, prompt, login, hashed)
