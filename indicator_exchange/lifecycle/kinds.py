"""Which lifecycle kind a STIX indicator is, read from its pattern and labels (ours or a partner's)."""

from collections.abc import Mapping
from typing import Any

from indicator_exchange.lifecycle.model import Kind
from indicator_exchange.stix.extensions import EXT_PROXY_CONTEXT


def kind_of(indicator: Mapping[str, Any]) -> Kind:
    """The kind whose decay applies. Unknown patterns decay as datacenter addresses do (30 d, linear)."""
    pattern = str(indicator.get("pattern") or "")
    if "x-hashed-identifier:" in pattern:
        return "hashed-identifier"
    if "x-llm-prompt:lsh_bands" in pattern:
        return "prompt-lsh"
    if "x-llm-prompt:hashes" in pattern:
        return "prompt-sha256"
    if " REPEATS " in pattern:
        return "cadence"
    if "user-account:account_login" in pattern:
        return "login-regex"
    if "email-addr:value" in pattern:
        return "email-domain"
    if "autonomous-system:number" in pattern or "belongs_to_refs[*].number" in pattern:
        return "asn"
    if "-addr:value" in pattern and "ISSUBSET" not in pattern:
        extension = (indicator.get("extensions") or {}).get(EXT_PROXY_CONTEXT) or {}
        labels = set(indicator.get("labels") or ())
        proxy_kind = extension.get("proxy_kind")
        if proxy_kind == "mobile" or (proxy_kind is None and "mobile-proxy" in labels):
            return "mobile-ip"
        if proxy_kind == "residential" or (proxy_kind is None and "residential-proxy" in labels):
            return "residential-ip"
    return "datacenter-ip"
