"""What every section of the sharing report shares: the request, the window in microseconds, who is "us".

Who is "us": an object version is *received* when a partner principal added it (TAXII POST) or when a pull
source stored it (no principal, a collection a pull source feeds, and not our own ``created_by_ref``);
every other version is *ours* and counts as published.
"""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.orm import Session

from indicator_exchange.errors import BadRequest, NotFound
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.store import catalog
from indicator_exchange.store import reports as store
from indicator_exchange.store.models import Collection, Principal

_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What to report on: ``[start, end)``, optional collections (ids or aliases) and partner, a clearance."""

    start: datetime
    end: datetime
    collections: Sequence[str] = ()
    partner: str | None = None
    clearance: Tlp = Tlp.RED


def to_us(moment: datetime) -> int:
    moment = moment.astimezone(UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def from_us(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def parse_when(text: str, *, end: bool = False) -> datetime:
    """``2026-11-01`` (a whole day: its start, or with ``end`` the next midnight) or an ISO 8601 time."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def bucket_for(start: datetime, end: datetime) -> tuple[str, int]:
    """Activity resolution: hours up to two days, days up to ~three months, weeks beyond."""
    span = end - start
    if span <= timedelta(days=2):
        return "hour", _HOUR_US
    if span <= timedelta(days=92):
        return "day", _DAY_US
    return "week", 7 * _DAY_US


@dataclass(slots=True)
class ReportContext:
    """The facts of one report run that every section reads; ``marking`` rises to the highest TLP counted."""

    identity: str
    organisation: str
    principals: dict[uuid.UUID, Principal]
    collections: dict[uuid.UUID, Collection]
    pull_sources: dict[uuid.UUID, list[str]]
    scope: store.Scope
    # The same scope with the collections spelled out: lookups by object id then use the
    # (collection_id, stix_id, version) index instead of scanning.
    lookup: store.Scope
    partner: Principal | None
    partner_source: str | None
    start_us: int
    end_us: int
    bucket_us: int
    marking: int = int(Tlp.CLEAR)

    def origin(
        self, added_by: uuid.UUID | None, created_by_ref: str | None, collection_id: uuid.UUID
    ) -> tuple[str, str]:
        """``("ours", "")``, ``("push", partner)`` or ``("pull", source names)``."""
        if added_by is not None:
            who = self.principals.get(added_by)
            if who is not None and who.kind == "partner":
                return "push", who.name
            return "ours", ""
        if created_by_ref != self.identity and collection_id in self.pull_sources:
            return "pull", ", ".join(self.pull_sources[collection_id])
        return "ours", ""

    def mark(self, level: int) -> None:
        self.marking = max(self.marking, level)

    def slot(self, date_added: int) -> int:
        return (date_added - self.start_us) // self.bucket_us

    def wants_partner(self, via: str, name: str) -> bool:
        if self.partner is None and self.partner_source is None:
            return True
        if via == "push":
            return self.partner is not None and name == self.partner.name
        return self.partner_source is not None and self.partner_source in name.split(", ")


def _resolve_collections(session: Session, keys: Sequence[str]) -> tuple[uuid.UUID, ...] | None:
    if not keys:
        return None
    chosen = [catalog.resolve_collection(session, key).id for key in keys]
    return tuple(dict.fromkeys(chosen))


def build_context(session: Session, request: ReportRequest, identity: str, organisation: str) -> ReportContext:
    if request.end <= request.start:
        raise BadRequest("the window is empty: --to must be after --from")
    collection_ids = _resolve_collections(session, request.collections)
    principals = {p.id: p for p in store.principals(session)}
    pull_sources: dict[uuid.UUID, list[str]] = defaultdict(list)
    source_names: set[str] = set()
    for source in store.feed_sources(session):
        source_names.add(source.name)
        if source.direction == "pull":
            pull_sources[source.local_collection_id].append(source.name)
    partner: Principal | None = None
    partner_source: str | None = None
    if request.partner is not None:
        partner = next((p for p in principals.values() if p.name == request.partner), None)
        partner_source = request.partner if request.partner in source_names else None
        if partner is None and partner_source is None:
            raise NotFound(f"there is no partner (principal or feed source) named {request.partner!r}")
    _, bucket_us = bucket_for(request.start, request.end)
    collections = {c.id: c for c in store.collections(session)}
    return ReportContext(
        identity=identity,
        organisation=organisation,
        principals=principals,
        collections=collections,
        pull_sources=dict(pull_sources),
        scope=store.Scope(clearance=int(request.clearance), collection_ids=collection_ids),
        lookup=store.Scope(clearance=int(request.clearance), collection_ids=collection_ids or tuple(collections)),
        partner=partner,
        partner_source=partner_source,
        start_us=to_us(request.start),
        end_us=to_us(request.end),
        bucket_us=bucket_us,
    )


def loads_object(raw: str) -> dict[str, object]:
    """A stored raw JSON object (``{}`` if it is not one): sections read a few fields of it."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
