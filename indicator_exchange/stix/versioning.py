"""New versions of stored objects: merging a re-detection, saying what it kept, revoking (STIX 2.1 §3.6)."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from indicator_exchange.stix.extensions import EXT_PROXY_CONTEXT
from indicator_exchange.stix.ids import stix_timestamp
from indicator_exchange.stix.markings import tlp_of


def later(previous: str, now: datetime) -> str:
    """A ``modified`` strictly after ``previous`` (STIX versioning), and not before ``now``."""
    candidate = stix_timestamp(now)
    if candidate > previous:
        return candidate
    prev = datetime.strptime(previous[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    return stix_timestamp(prev + timedelta(milliseconds=1))


_SHARED_MERGE = ("confidence", "valid_from", "valid_until", "labels", "indicator_types", "first_seen", "last_seen")


def merge(existing: dict[str, Any], new: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The next version of ``existing`` given a re-detection ``new`` of the same object, or ``None`` when no
    shared property changes (no version is emitted for a repeat).

    Rules (reference §5 step 4): confidence = max; valid_from / first_seen = min; valid_until / last_seen = max;
    labels and indicator_types = union; proxy-context ``accounts_linked`` = max. Never versions a revoked object.
    """
    if existing.get("revoked") is True:
        return None
    merged = dict(existing)
    for key in _SHARED_MERGE:
        if key not in new:
            continue
        old, value = existing.get(key), new[key]
        if old is None:
            merged[key] = value
        elif key in ("labels", "indicator_types"):
            merged[key] = sorted(set(old) | set(value))
        elif key in ("valid_from", "first_seen"):
            merged[key] = min(old, value)
        else:
            merged[key] = max(old, value)
    if EXT_PROXY_CONTEXT in (new.get("extensions") or {}):
        old_ext = dict((existing.get("extensions") or {}).get(EXT_PROXY_CONTEXT, {}))
        new_ext = new["extensions"][EXT_PROXY_CONTEXT]
        if "accounts_linked" in new_ext:
            old_ext["accounts_linked"] = max(old_ext.get("accounts_linked", 0), new_ext["accounts_linked"])
        merged["extensions"] = {**(existing.get("extensions") or {}), EXT_PROXY_CONTEXT: {**new_ext, **old_ext}}
    if merged == existing:
        return None
    merged["modified"] = later(str(existing["modified"]), now)
    return merged


def kept_on_merge(existing: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What a re-detection ``new`` asked for that the next version of ``existing`` does not take (``merge``
    keeps the stored object's TLP marking and proxy kind), each as a message saying why."""
    kept = []
    what = "indicator" if existing.get("type") == "indicator" else str(existing.get("type"))
    stored_tlp, asked_tlp = tlp_of(existing), tlp_of(new)
    if stored_tlp is not None and asked_tlp is not None and stored_tlp != asked_tlp:
        how = " (revoke it with false_positive, then re-detect, to publish it anew)" if what == "indicator" else ""
        kept.append(
            f"tlp: the stored {what} stays {stored_tlp.label}, not {asked_tlp.label}: a new version never changes "
            f"an object's marking{how}"
        )
    stored_ext = (existing.get("extensions") or {}).get(EXT_PROXY_CONTEXT) or {}
    asked_ext = (new.get("extensions") or {}).get(EXT_PROXY_CONTEXT) or {}
    stored_kind, asked_kind = stored_ext.get("proxy_kind"), asked_ext.get("proxy_kind")
    if stored_kind is not None and asked_kind is not None and stored_kind != asked_kind:
        kept.append(
            f"proxy_kind: the stored indicator stays {stored_kind}, not {asked_kind}: its first classification is "
            f"kept; {asked_kind}-proxy joins its labels"
        )
    return kept


def revoke(existing: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The revoked final version of ``existing`` (a false positive); STIX allows no version after it."""
    revoked = dict(existing)
    revoked["revoked"] = True
    revoked["modified"] = later(str(existing["modified"]), now)
    return revoked
