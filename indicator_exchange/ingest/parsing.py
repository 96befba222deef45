"""Reading detection requests: a JSON array or NDJSON, one detection per line, with line numbers kept."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from indicator_exchange.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


@dataclass(frozen=True, slots=True)
class InputLine:
    """One detection as sent: its 1-based line (or array index + 1) and the parsed value, or why not."""

    line: int
    value: object | None
    error: str | None = None


def is_ndjson(content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in NDJSON_TYPES:
        return True
    if kind in ("application/json", ""):
        return False
    raise UnsupportedMediaType("send detections as application/json (an array) or application/x-ndjson")


def parse_json_array(body: bytes, *, max_items: int) -> list[InputLine]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise BadRequest("send a JSON array of detections (or NDJSON with Content-Type application/x-ndjson)")
    if len(data) > max_items:
        raise PayloadTooLarge(f"{len(data)} detections in one request; the limit is {max_items}")
    return [InputLine(line=index + 1, value=item) for index, item in enumerate(data)]


def parse_ndjson_line(raw: bytes, line: int) -> InputLine | None:
    """``None`` for a blank line; otherwise the parsed value or a per-line error (never an exception)."""
    text = raw.strip()
    if not text:
        return None
    try:
        return InputLine(line=line, value=orjson.loads(text))
    except orjson.JSONDecodeError as exc:
        return InputLine(line=line, value=None, error=f"not valid JSON: {exc}")


async def stream_ndjson(chunks: AsyncIterator[bytes], *, max_items: int, max_bytes: int) -> list[InputLine]:
    """Parse NDJSON as it arrives: memory holds parsed detections, never a second copy of the body."""
    lines: list[InputLine] = []
    pending = b""
    number = 0
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body exceeds this server's limit of {max_bytes} bytes")
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            parsed = parse_ndjson_line(raw, number)
            if parsed is not None:
                lines.append(parsed)
        if len(lines) > max_items:
            raise PayloadTooLarge(f"more than {max_items} detections in one request; split the upload")
    if pending.strip():
        parsed = parse_ndjson_line(pending, number + 1)
        if parsed is not None:
            lines.append(parsed)
    if len(lines) > max_items:
        raise PayloadTooLarge(f"more than {max_items} detections in one request; split the upload")
    return lines
