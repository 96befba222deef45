"""Streaming JSONL reader of traffic events: one pass, one line at a time, every bad line reported.

A line becomes an ``Event`` or a ``LineError`` (line number, reason), never an exception and never silence:
malformed JSON, unknown fields, wrong types, out-of-order timestamps beyond ``max_lag_seconds`` and lines
longer than ``max_line_bytes`` are each reported. Reasons never echo the line's content (it may hold a prompt
or PII).

The common line is checked by hand against ``schemas/match-event.schema.json`` (the pydantic model costs about
as much as the whole detector per event); any line the fast check does not accept goes through
``TrafficEvent`` itself, so the two can only disagree in the direction of the model.
"""

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import orjson
from pydantic import ValidationError

from indicator_exchange.match.events import TrafficEvent

_KNOWN = frozenset(TrafficEvent.model_fields)
_STRINGS = {"event_id": 256, "account_id": 256, "account_login": 256, "email": 320, "api_key_id": 256}
_STRINGS |= {"user_agent": 1024, "model": 256}
_HEX = frozenset("0123456789abcdef")


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


_ANY_STRING, _COUNT, _EVENT_TYPE, _SHA256, _TIMESTAMP = -1, -2, -3, -4, -5
_CHECKS: dict[str, int] = dict(_STRINGS)
_CHECKS |= {"prompt_text": _ANY_STRING, "source_ip": _ANY_STRING, "asn": _COUNT, "output_tokens": _COUNT}
_CHECKS |= {"event_type": _EVENT_TYPE, "prompt_sha256": _SHA256, "timestamp": _TIMESTAMP}
"""Field -> how the fast check takes it: a positive number is a string's longest length. Fields not here
(identifiers: rare) are left to the model."""


def _fast(data: dict[str, Any]) -> bool:
    """True when every field present has the schema's type and bounds (a cheap subset of ``TrafficEvent``)."""
    for name, value in data.items():
        if value is None:
            continue
        kind = _CHECKS.get(name)
        if kind is None:
            return False
        if kind > 0:
            if type(value) is not str or len(value) > kind:
                return False
        elif kind == _ANY_STRING:
            if type(value) is not str:
                return False
        elif kind == _COUNT:
            if type(value) is not int or value < 0:
                return False
        elif kind == _EVENT_TYPE:
            if value != "request" and value != "signup":
                return False
        elif kind == _SHA256 and (type(value) is not str or len(value) != 64 or not _HEX.issuperset(value)):
            return False
    return True


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


def read_events(stream: IO[bytes], *, max_line_bytes: int, max_lag_seconds: float) -> Iterator[Event | LineError]:
    """Every non-blank line of ``stream`` as an ``Event`` or a ``LineError``, in order."""
    networks = _Networks()
    cached = networks.cache
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
        if not raw.strip():
            continue
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            yield LineError(number, "not valid JSON")
            continue
        if type(data) is not dict:
            yield LineError(number, "not a JSON object")
            continue
        if not _KNOWN.issuperset(data):
            unknown = data.keys() - _KNOWN
            yield LineError(number, f"unknown field(s): {', '.join(sorted(unknown)[:5])}")
            continue
        ts = _timestamp(data.get("timestamp"))
        if ts is None or not _fast(data):
            try:
                event = TrafficEvent.model_validate(data)
            except ValidationError as exc:
                yield LineError(number, _reason(exc))
                continue
            data = event.model_dump(exclude_none=True, mode="python")
            ts = event.timestamp.timestamp()
        if ts < latest - max_lag_seconds:
            yield LineError(
                number, f"timestamp {latest - ts:,.0f} s before the latest seen (tolerance {max_lag_seconds:,.0f} s)"
            )
            continue
        latest = max(latest, ts)
        ip = net = None
        source = data.get("source_ip")
        if source is not None:
            found = cached.get(source) or networks.get(source)
            if found is None:
                yield LineError(number, "source_ip: not an IPv4 or IPv6 address")
                continue
            ip, net = found
        email = data.get("email")
        domain = email.rpartition("@")[2].strip().casefold() or None if email and "@" in email else None
        yield Event(
            line=number,
            ts=ts,
            signup=data.get("event_type") == "signup",
            # No account id: the login or the API key stands for the account (one of them names it).
            account=data.get("account_id") or data.get("account_login") or data.get("api_key_id"),
            ip=ip,
            net=net,
            asn=data.get("asn"),
            email_domain=domain,
            prompt=data.get("prompt_text"),
            login=data.get("account_login"),
        )
