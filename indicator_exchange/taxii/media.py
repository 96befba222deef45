"""TAXII 2.1 media types and content negotiation (TAXII 2.1 §1.6.8, §3.2).

Clients are accepted with or without the ``version`` parameter and with ``q=`` weights; a version other
than 2.1 is refused.
"""

from indicator_exchange.errors import NotAcceptable, UnsupportedMediaType

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
_TAXII = "application/taxii+json"


def _parse(media_range: str) -> tuple[str, dict[str, str]]:
    kind, *params = (part.strip() for part in media_range.split(";"))
    parsed: dict[str, str] = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return kind.lower(), parsed


def _weight(params: dict[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0


def check_accept(header: str | None) -> None:
    """Raise ``NotAcceptable`` unless the Accept header admits TAXII 2.1 JSON (a missing header does)."""
    if header is None or not header.strip():
        return
    for media_range in header.split(","):
        kind, params = _parse(media_range)
        if _weight(params) <= 0:
            continue
        if kind in ("*/*", "application/*"):
            return
        if kind == _TAXII and params.get("version", "2.1") == "2.1":
            return
    raise NotAcceptable(f"this server answers only {TAXII_MEDIA_TYPE}; the request accepts {header!r}")


def check_content_type(header: str | None) -> None:
    """Raise ``UnsupportedMediaType`` unless the body is declared as TAXII 2.1 JSON."""
    if header is None:
        raise UnsupportedMediaType(f"send the body as Content-Type: {TAXII_MEDIA_TYPE}")
    kind, params = _parse(header)
    if kind != _TAXII or params.get("version", "2.1") != "2.1":
        raise UnsupportedMediaType(f"the body must be {TAXII_MEDIA_TYPE}, not {header!r}")
