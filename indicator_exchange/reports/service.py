"""Build the sharing report of a window from the store and the audit trail.

Figures come from what is stored, not from what any component says it did: the STIX object versions (with
their ``date_added``, TLP, ``created_by_ref``, ``revoked`` and raw JSON), ingest provenance and refusals, TAXII
status resources, sync rejections, API keys, and the audit trail of reads.

Who is "us": an object version is *received* when a partner principal added it (TAXII POST) or when a pull
source stored it (no principal, a collection a pull source feeds, and not our own ``created_by_ref``);
every other version is *ours* and counts as published.
"""

import uuid
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.orm import Session

from indicator_exchange.errors import BadRequest, NotFound
from indicator_exchange.reports import kinds
from indicator_exchange.reports.model import (
    Activity,
    ActivityPoint,
    Breakdown,
    Counts,
    Exceptions,
    Filters,
    KeyEvent,
    Published,
    ReasonCount,
    Received,
    ReceivedRow,
    Refusal,
    Rejection,
    Shared,
    SharedRow,
    SharingReport,
    SightingEffect,
    Sightings,
    Window,
)
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store import catalog, report_audit
from indicator_exchange.store import reports as store
from indicator_exchange.store.models import ApiKey, Collection, Principal

MAX_LISTED = 200
MAX_SIGHTED = 50
UNAUTHENTICATED = "(unauthenticated)"
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
class _Context:
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


def _context(session: Session, request: ReportRequest, identity: str, organisation: str) -> _Context:
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
    return _Context(
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


def build_report(
    session: Session, request: ReportRequest, *, identity: str, organisation: str, now: datetime | None = None
) -> SharingReport:
    """The sharing report of ``request``'s window; ``identity`` is our STIX identity (our ``created_by_ref``)."""
    now = now or datetime.now(UTC)
    ctx = _context(session, request, identity, organisation)
    activity: dict[str, Counter[int]] = {name: Counter() for name in ("published", "received", "served", "denied")}
    published = _published(session, ctx, activity["published"], now)
    received = _received(session, ctx, activity["received"])
    shared = _shared(session, ctx, activity)
    exceptions = _exceptions(session, ctx, request)
    bucket, _ = bucket_for(request.start, request.end)
    return SharingReport(
        generated_at=now,
        organisation=organisation,
        window=Window(start=request.start, end=request.end),
        filters=Filters(
            collections=[str(c) for c in ctx.scope.collection_ids or ()],
            partner=request.partner,
            clearance=Tlp(ctx.scope.clearance).label,
        ),
        marking=f"TLP:{Tlp(ctx.marking).label.upper()}",
        published=published,
        shared=shared,
        received=received,
        exceptions=exceptions,
        activity=_activity(ctx, bucket, activity),
    )


# --- published ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Event:
    """One counted life-cycle event of one indicator, with what it is broken down by."""

    stix_id: str
    kind: str
    tlp: int
    created_by_ref: str | None


@dataclass(slots=True)
class _Tally:
    created: list[_Event] = field(default_factory=list)
    versioned: list[_Event] = field(default_factory=list)
    revoked: list[_Event] = field(default_factory=list)
    expired: list[_Event] = field(default_factory=list)

    def ids(self) -> list[str]:
        return sorted(
            {e.stix_id for group in (self.created, self.versioned, self.revoked, self.expired) for e in group}
        )


def _loads(raw: str) -> dict[str, object]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _published(session: Session, ctx: _Context, activity: Counter[int], now: datetime) -> Published:
    versions: dict[tuple[str, int], _Event] = {}
    revoking: dict[str, tuple[int, _Event]] = {}
    for row in store.versions_added(session, ctx.scope, start_us=ctx.start_us, end_us=ctx.end_us, types=["indicator"]):
        if ctx.origin(row.added_by, row.created_by_ref, row.collection_id)[0] != "ours":
            continue
        key = (row.stix_id, row.version)
        if key in versions:  # the same version stored in a second collection is not a second event
            continue
        obj = _loads(row.raw)
        event = _Event(row.stix_id, kinds.kind_of_pattern(obj.get("pattern")), row.tlp, row.created_by_ref)
        versions[key] = event
        activity[ctx.slot(row.date_added)] += 1
        ctx.mark(row.tlp)
        if row.revoked and row.stix_id not in revoking:
            revoking[row.stix_id] = (row.version, event)

    ids_seen = sorted({stix_id for stix_id, _ in versions})
    histories = store.id_histories(session, ctx.lookup, ids_seen, before_us=ctx.start_us)
    tally = _Tally()
    for (stix_id, version), event in versions.items():
        history = histories.get(stix_id)
        if history is None or version in history.versions_before:
            continue  # stored earlier (in another collection): not an event of this window
        if version == history.first_version and history.first_added >= ctx.start_us:
            tally.created.append(event)
        elif not (stix_id in revoking and revoking[stix_id][0] == version):
            tally.versioned.append(event)
    for stix_id, (_, event) in revoking.items():
        history = histories.get(stix_id)
        if (
            history is not None
            and history.first_revoked_added is not None
            and history.first_revoked_added >= ctx.start_us
        ):
            tally.revoked.append(event)
    tally.expired = _expired(session, ctx, now)

    ids = tally.ids()
    campaigns = _campaigns(session, ctx, set(ids))
    detectors = store.detectors_of(session, ctx.lookup, ids)
    names = _identity_names(session, ctx)
    return Published(
        totals=_counts(tally, lambda e: True),
        by_kind=[Breakdown(key=k, label=kinds.KIND_LABELS[k], counts=_counts(tally, _is_kind(k)))
                 for k in kinds.KINDS],
        by_tlp=[Breakdown(key=t.label, label=f"TLP:{t.label.upper()}", counts=_counts(tally, _is_tlp(t)))
                for t in Tlp],
        by_campaign=_grouped(tally, lambda e: campaigns.get(e.stix_id) or [("none", "(no campaign)")]),
        by_detector=_grouped(tally, lambda e: _detector_keys(e, detectors, names)),
    )  # fmt: skip


def _is_kind(kind: str) -> Callable[[_Event], bool]:
    return lambda event: event.kind == kind


def _is_tlp(level: Tlp) -> Callable[[_Event], bool]:
    return lambda event: event.tlp == int(level)


def _expired(session: Session, ctx: _Context, now: datetime) -> list[_Event]:
    """Our unrevoked indicators whose ``valid_until`` fell inside the window (and not in the future)."""
    until = min(ctx.end_us, to_us(now))
    found: dict[str, _Event] = {}
    for row in store.latest_versions(session, ctx.scope, stix_type="indicator", containing='"valid_until"'):
        if (
            row.revoked
            or row.stix_id in found
            or ctx.origin(row.added_by, row.created_by_ref, row.collection_id)[0] != "ours"
        ):
            continue
        obj = _loads(row.raw)
        try:
            valid_until = parse_timestamp_us(obj.get("valid_until"))
        except InvalidObject:
            continue
        if ctx.start_us <= valid_until < until:
            found[row.stix_id] = _Event(row.stix_id, kinds.kind_of_pattern(obj.get("pattern")), row.tlp,
                                        row.created_by_ref)  # fmt: skip
            ctx.mark(row.tlp)
    return list(found.values())


def _campaigns(session: Session, ctx: _Context, indicator_ids: set[str]) -> dict[str, list[tuple[str, str]]]:
    """indicator id -> [(campaign id, campaign name)] through ``indicates`` relationships."""
    if not indicator_ids:
        return {}
    links: dict[str, set[str]] = defaultdict(set)
    for row in store.latest_versions(session, ctx.scope, stix_type="relationship", containing='"indicates"'):
        obj = _loads(row.raw)
        source, target = obj.get("source_ref"), obj.get("target_ref")
        if (
            obj.get("relationship_type") == "indicates"
            and not row.revoked
            and isinstance(source, str)
            and source in indicator_ids
            and isinstance(target, str)
            and target.startswith("campaign--")
        ):
            links[source].add(target)
    if not links:
        return {}
    names: dict[str, str] = {}
    for row in store.latest_versions(session, ctx.scope, stix_type="campaign"):
        name = _loads(row.raw).get("name")
        names[row.stix_id] = str(name) if name else row.stix_id
    return {
        indicator: sorted((campaign, names.get(campaign, campaign)) for campaign in campaigns)
        for indicator, campaigns in links.items()
    }


def _identity_names(session: Session, ctx: _Context) -> dict[str, str]:
    names = {p.identity_ref: p.name for p in ctx.principals.values() if p.identity_ref}
    for row in store.latest_versions(session, ctx.scope, stix_type="identity"):
        name = _loads(row.raw).get("name")
        if isinstance(name, str) and name:
            names[row.stix_id] = name
    names[ctx.identity] = ctx.organisation
    return names


def _detector_keys(event: _Event, detectors: dict[str, set[str]], names: dict[str, str]) -> list[tuple[str, str]]:
    found = detectors.get(event.stix_id)
    if found:
        return [(name, name) for name in sorted(found)]
    if event.created_by_ref:
        return [(event.created_by_ref, names.get(event.created_by_ref, event.created_by_ref))]
    return [("unknown", "(unknown)")]


def _counts(tally: _Tally, keep: Callable[[_Event], bool]) -> Counts:
    return Counts(
        created=sum(1 for e in tally.created if keep(e)),
        versioned=sum(1 for e in tally.versioned if keep(e)),
        revoked=sum(1 for e in tally.revoked if keep(e)),
        expired=sum(1 for e in tally.expired if keep(e)),
    )


def _grouped(tally: _Tally, keys_of: Callable[[_Event], list[tuple[str, str]]]) -> list[Breakdown]:
    counters: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for name in ("created", "versioned", "revoked", "expired"):
        for event in getattr(tally, name):
            for key in keys_of(event):
                counters[key][name] += 1
    rows = [
        Breakdown(key=key, label=label, counts=Counts(**{name: counter[name] for name in Counts.model_fields}))
        for (key, label), counter in counters.items()
    ]
    return sorted(rows, key=lambda b: (-(b.counts.created + b.counts.versioned + b.counts.revoked + b.counts.expired),
                                       b.label))  # fmt: skip


# --- received -----------------------------------------------------------------------------------------------


def _received(session: Session, ctx: _Context, activity: Counter[int]) -> Received:
    rows: dict[tuple[str, str, uuid.UUID], dict[str, int]] = defaultdict(Counter)
    for added_by, collection_id, stix_type, ours, slot, level, count in store.version_counts(
        session, ctx.scope, start_us=ctx.start_us, end_us=ctx.end_us, bucket_us=ctx.bucket_us, our_identity=ctx.identity
    ):
        via, name = ctx.origin(added_by, ctx.identity if ours else None, collection_id)
        if via == "ours" or not ctx.wants_partner(via, name):
            continue
        counter = rows[(name, via, collection_id)]
        counter["objects"] += count
        counter["indicators"] += count if stix_type == "indicator" else 0
        counter["sightings"] += count if stix_type == "sighting" else 0
        activity[slot] += count
        ctx.mark(level)

    submitted: Counter[tuple[str, uuid.UUID]] = Counter()
    failed: Counter[tuple[str, uuid.UUID]] = Counter()
    for status in store.statuses(session, start=from_us(ctx.start_us), end=from_us(ctx.end_us),
                                 collection_ids=ctx.scope.collection_ids):  # fmt: skip
        who = ctx.principals.get(status.principal_id) if status.principal_id else None
        if who is None or who.kind != "partner" or status.collection_id is None:
            continue
        if not ctx.wants_partner("push", who.name):
            continue
        submitted[(who.name, status.collection_id)] += status.total_count
        failed[(who.name, status.collection_id)] += status.failure_count
        rows.setdefault((who.name, "push", status.collection_id), Counter())
    for _at, source, collection_id, _object_id, _reason in store.sync_rejections(
        session, start=from_us(ctx.start_us), end=from_us(ctx.end_us), collection_ids=ctx.scope.collection_ids
    ):
        if not ctx.wants_partner("pull", source):
            continue
        name = ", ".join(ctx.pull_sources.get(collection_id, [source]))
        failed[(name, collection_id)] += 1
        rows.setdefault((name, "pull", collection_id), Counter())

    result = [
        ReceivedRow(
            partner=name, via=via, collection_id=str(collection_id),
            collection_title=ctx.collections[collection_id].title if collection_id in ctx.collections else "",
            objects=counter.get("objects", 0), indicators=counter.get("indicators", 0),
            sightings=counter.get("sightings", 0), submitted=submitted.get((name, collection_id), 0),
            failed=failed.get((name, collection_id), 0),
        )
        for (name, via, collection_id), counter in rows.items()
    ]  # fmt: skip
    result.sort(key=lambda r: (r.partner, r.via, r.collection_title, r.collection_id))
    return Received(rows=result, objects=sum(r.objects for r in result), sightings=_sightings(session, ctx))


def _sightings(session: Session, ctx: _Context) -> Sightings:
    per_indicator: dict[str, list[int]] = {}  # indicator -> [sightings, observations, first date_added]
    seen: set[str] = set()
    for row in store.versions_added(session, ctx.scope, start_us=ctx.start_us, end_us=ctx.end_us, types=["sighting"]):
        via, name = ctx.origin(row.added_by, row.created_by_ref, row.collection_id)
        if via == "ours" or not ctx.wants_partner(via, name) or row.stix_id in seen:
            continue
        seen.add(row.stix_id)
        obj = _loads(row.raw)
        target = obj.get("sighting_of_ref")
        count = obj.get("count")
        observed = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else 1
        if not isinstance(target, str):
            continue
        entry = per_indicator.setdefault(target, [0, 0, row.date_added])
        entry[0] += 1
        entry[1] += observed

    timelines: dict[str, list[tuple[int, int, int | None, str | None, bool]]] = defaultdict(list)
    indicator_ids = sorted(i for i in per_indicator if i.startswith("indicator--"))
    for row in store.versions_of(session, ctx.lookup, indicator_ids):
        obj = _loads(row.raw)
        confidence = obj.get("confidence")
        title = obj.get("name")
        ours = ctx.origin(row.added_by, row.created_by_ref, row.collection_id)[0] == "ours"
        timelines[row.stix_id].append((
            row.date_added, row.version, confidence if isinstance(confidence, int) else None,
            title if isinstance(title, str) else None, ours,
        ))  # fmt: skip

    effects: list[SightingEffect] = []
    raised = lowered = unchanged = 0
    changes: list[int] = []
    of_ours = 0
    for indicator_id, (count, observations, first_added) in per_indicator.items():
        timeline = sorted(timelines.get(indicator_id, []))
        if any(entry[4] for entry in timeline):
            of_ours += count
        before = _confidence_at(timeline, first_added, inclusive=False)
        after = _confidence_at(timeline, ctx.end_us, inclusive=False)
        if before is not None and after is not None:
            changes.append(after - before)
            if after > before:
                raised += 1
            elif after < before:
                lowered += 1
            else:
                unchanged += 1
        latest_name = next((entry[3] for entry in reversed(timeline) if entry[3]), None)
        effects.append(SightingEffect(
            indicator_id=indicator_id, indicator_name=latest_name, sightings=count, observations=observations,
            confidence_before=before, confidence_after=after,
        ))  # fmt: skip
    effects.sort(key=lambda e: (-e.sightings, e.indicator_id))
    return Sightings(
        received=len(seen),
        observations=sum(e.observations for e in effects),
        indicators_sighted=len(per_indicator),
        of_our_indicators=of_ours,
        confidence_raised=raised,
        confidence_lowered=lowered,
        confidence_unchanged=unchanged,
        mean_confidence_change=round(sum(changes) / len(changes), 2) if changes else None,
        top=effects[:MAX_SIGHTED],
    )


def _confidence_at(timeline: list[tuple[int, int, int | None, str | None, bool]], moment: int, *,
                   inclusive: bool) -> int | None:  # fmt: skip
    """Confidence of the highest version stored before ``moment``."""
    stored = [entry for entry in timeline if entry[0] < moment or (inclusive and entry[0] == moment)]
    if not stored:
        return None
    return max(stored, key=lambda entry: entry[1])[2]


# --- shared (audit trail) -----------------------------------------------------------------------------------


def _is_object_read(row: report_audit.AuditRow) -> bool:
    route = row.route or row.path
    return row.method == "GET" and "/objects/" in route and not route.rstrip("/").endswith(("/versions", "/manifest"))


@dataclass(slots=True)
class _Access:
    requests: int = 0
    served: int = 0
    denied: int = 0
    first: datetime | None = None
    last: datetime | None = None


def _shared(session: Session, ctx: _Context, activity: dict[str, Counter[int]]) -> Shared:
    if not report_audit.audit_available():
        return Shared(available=False, note="this store has no audit trail; sharing figures are not available")
    if ctx.partner is None and ctx.partner_source is not None:
        return Shared(available=True, note=f"{ctx.partner_source} is a feed source: nothing is served to it")
    groups: dict[tuple[str, str | None], _Access] = {}
    served_events: dict[tuple[str, str | None], list[report_audit.AuditRow]] = defaultdict(list)
    clearance_of: dict[str, int] = {}
    for row in report_audit.audit_rows(
        session, start=from_us(ctx.start_us), end=from_us(ctx.end_us), collection_ids=ctx.scope.collection_ids,
        principal_id=ctx.partner.id if ctx.partner else None,
    ):  # fmt: skip
        who = ctx.principals.get(row.principal_id) if row.principal_id else None
        if who is not None and who.kind != "partner":
            continue  # internal principals (detectors, compliance, admins) are not sharing partners
        if who is None and row.principal_id is None and not row.denied:
            continue  # anonymous requests that were not refused (sign-in pages, probes) share nothing
        name = who.name if who else (row.principal_name or UNAUTHENTICATED)
        if who is not None:
            clearance_of[name] = who.clearance
        group = groups.setdefault((name, row.collection_id), _Access())
        group.requests += row.requests
        slot = ctx.slot(to_us(row.at))
        if row.denied:
            group.denied += row.requests
            activity["denied"][slot] += row.requests
        elif row.status_code < 400:
            group.first = group.first or row.at
            group.last = row.at
            if _is_object_read(row) and row.object_count:
                group.served += row.object_count
                activity["served"][slot] += row.object_count
                served_events[(name, row.collection_id)].append(row)

    tlp_served = _reconstruct_tlp(session, ctx, served_events, clearance_of)
    rows: list[SharedRow] = []
    for (name, collection_id), group in groups.items():
        collection = _collection(ctx, collection_id)
        rows.append(SharedRow(
            partner=name, collection_id=collection_id, collection_title=collection.title if collection else None,
            requests=group.requests, objects_served=group.served, tlp_served=tlp_served.get((name, collection_id), {}),
            first_access=group.first, last_access=group.last, denied=group.denied,
        ))  # fmt: skip
    rows.sort(key=lambda r: (r.partner, r.collection_title or "", r.collection_id or ""))
    totals: Counter[str] = Counter()
    for row_tlp in tlp_served.values():
        totals.update(row_tlp)
    return Shared(
        available=True,
        note="TLP levels served are reconstructed from each read's date_added range and filters.",
        rows=rows,
        requests=sum(r.requests for r in rows),
        objects_served=sum(r.objects_served for r in rows),
        denied=sum(r.denied for r in rows),
        tlp_served={t.label: totals[t.label] for t in Tlp if totals[t.label]},
    )


def _collection(ctx: _Context, collection_id: str | None) -> Collection | None:
    if collection_id is None:
        return None
    try:
        return ctx.collections.get(uuid.UUID(collection_id))
    except ValueError:
        return None


def _filter_values(filters: object, name: str) -> list[str] | None:
    """Values of one query parameter from the audit's recorded filters (a mapping of str or list of str)."""
    if not isinstance(filters, dict):
        return None
    value = filters.get(name)
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [v.strip() for item in items for v in str(item).split(",") if v.strip()]


def _reconstruct_tlp(
    session: Session, ctx: _Context, events: dict[tuple[str, str | None], list[report_audit.AuditRow]],
    clearance_of: dict[str, int],
) -> dict[tuple[str, str | None], dict[str, int]]:  # fmt: skip
    """TLP levels of what each read returned: the versions in its ``date_added`` range that pass its filters
    and the visibility it ran under (recorded by the audit trail; else the principal's current clearance)."""
    result: dict[tuple[str, str | None], dict[str, int]] = {}
    for (name, collection_id), rows in events.items():
        collection = _collection(ctx, collection_id)
        bounded = [
            (r, r.date_added_first, r.date_added_last)
            for r in rows
            if r.date_added_first is not None and r.date_added_last is not None
        ]
        if collection is None or not bounded:
            continue
        low = min(first for _, first, _ in bounded)
        high = max(last for _, _, last in bounded)
        candidates = report_audit.served_candidates(session, collection.id, low=low, high=high)
        keys = [c.date_added for c in candidates]
        counter: Counter[str] = Counter()
        for row, first, last in bounded:
            clearance = row.clearance if row.clearance is not None else clearance_of.get(name, int(Tlp.RED))
            window = candidates[bisect_left(keys, first) : bisect_right(keys, last)]
            for candidate in _matching(window, row, row.collection_clock or last):
                default = row.default_tlp if row.default_tlp is not None else candidate.default_tlp
                level = default if candidate.tlp is None else candidate.tlp
                if level > clearance or level > ctx.scope.clearance:
                    continue
                counter[Tlp(level).label] += 1
                ctx.mark(level)
        result[(name, collection_id)] = {t.label: counter[t.label] for t in Tlp if counter[t.label]}
    return result


def _matching(
    candidates: Iterable[report_audit.ServedCandidate], row: report_audit.AuditRow, clock: int
) -> Iterable[report_audit.ServedCandidate]:
    types = _filter_values(row.filters, "match[type]")
    ids = _filter_values(row.filters, "match[id]")
    specs = _filter_values(row.filters, "match[spec_version]")
    versions = _filter_values(row.filters, "match[version]") or ["last"]
    if ids is None and row.object_id:
        ids = [row.object_id]
    elif ids is None and (row.route or "").rstrip("/").endswith("{object_id}"):
        ids = [row.path.rstrip("/").rsplit("/", 1)[-1]]
    for candidate in candidates:
        if types is not None and candidate.stix_type not in types:
            continue
        if ids is not None and candidate.stix_id not in ids:
            continue
        if specs is not None and candidate.spec_version not in specs:
            continue
        if "all" not in versions:
            # "last"/"first" as they were when the read ran: no newer (older) version stored by then.
            is_last = candidate.superseded_at is None or candidate.superseded_at > clock
            is_first = candidate.preceded_at is None or candidate.preceded_at > clock
            if not (("last" in versions and is_last) or ("first" in versions and is_first)
                    or _exact_version(versions, candidate.version)):  # fmt: skip
                continue
        yield candidate


def _exact_version(versions: list[str], version: int) -> bool:
    for text in versions:
        if text in ("last", "first", "all"):
            continue
        try:
            if parse_timestamp_us(text) == version:
                return True
        except InvalidObject:
            continue
    return False


# --- exceptions ---------------------------------------------------------------------------------------------


def _exceptions(session: Session, ctx: _Context, request: ReportRequest) -> Exceptions:
    start, end = from_us(ctx.start_us), from_us(ctx.end_us)
    principal_id = ctx.partner.id if ctx.partner else None
    only_source = ctx.partner is None and ctx.partner_source is not None
    reasons = [] if only_source else store.refusal_reasons(
        session, start=start, end=end, collection_ids=ctx.scope.collection_ids, principal_id=principal_id)  # fmt: skip
    recent = [] if only_source else store.recent_refusals(
        session, start=start, end=end, collection_ids=ctx.scope.collection_ids, principal_id=principal_id,
        limit=MAX_LISTED)  # fmt: skip

    rejections: list[Rejection] = []
    rejection_reasons: Counter[str] = Counter()
    if not only_source:
        for status in store.statuses(session, start=start, end=end, collection_ids=ctx.scope.collection_ids):
            if not status.failure_count or (principal_id is not None and status.principal_id != principal_id):
                continue
            who = ctx.principals.get(status.principal_id) if status.principal_id else None
            for failure in status.failures:
                reason = str(failure.get("message") or "refused")
                rejection_reasons[_reason_class(reason)] += 1
                object_id = failure.get("id")
                rejections.append(Rejection(
                    at=status.created_at, partner=who.name if who else None, via="push",
                    collection_id=str(status.collection_id) if status.collection_id else None,
                    object_id=str(object_id) if object_id else None, reason=reason,
                ))  # fmt: skip
    if ctx.partner is None or ctx.partner_source is not None:
        for at, source, collection_id, object_id, reason in store.sync_rejections(
            session, start=start, end=end, collection_ids=ctx.scope.collection_ids
        ):
            if ctx.partner_source is not None and source != ctx.partner_source:
                continue
            rejection_reasons[_reason_class(reason)] += 1
            rejections.append(Rejection(at=at, partner=source, via="pull", collection_id=str(collection_id),
                                        object_id=object_id, reason=reason))  # fmt: skip
    rejections.sort(key=lambda r: r.at, reverse=True)

    def key_events(found: list[tuple[ApiKey, Principal]], revoked: bool) -> list[KeyEvent]:
        if only_source:
            return []
        return [
            KeyEvent(at=(key.revoked_at if revoked else key.created_at) or key.created_at, key_id=key.key_id,
                     principal=owner.name, principal_kind=owner.kind)
            for key, owner in found
            if principal_id is None or owner.id == principal_id
        ]  # fmt: skip

    return Exceptions(
        refused_detections=sum(n for _, n in reasons),
        refusal_reasons=[ReasonCount(reason=r, count=n) for r, n in reasons],
        refusals=[
            Refusal(at=r.at, principal=_principal_name(ctx, r.principal_id), detector=r.detector, kind=r.kind,
                    field=r.field, reason=r.reason)
            for r in recent
        ],
        rejected_objects=len(rejections),
        rejection_reasons=[ReasonCount(reason=r, count=n) for r, n in
                           sorted(rejection_reasons.items(), key=lambda item: (-item[1], item[0]))],
        rejections=rejections[:MAX_LISTED],
        keys_created=key_events(store.keys_created(session, start=start, end=end), revoked=False),
        keys_revoked=key_events(store.keys_revoked(session, start=start, end=end), revoked=True),
    )  # fmt: skip


def _principal_name(ctx: _Context, principal_id: uuid.UUID | None) -> str | None:
    who = ctx.principals.get(principal_id) if principal_id else None
    return who.name if who else None


def _reason_class(reason: str) -> str:
    """A failure message without its object-specific prefix (``objects[3]: ``), to count alike reasons together."""
    head, sep, tail = reason.partition(": ")
    return tail if sep and head.startswith("objects[") else reason


# --- activity -----------------------------------------------------------------------------------------------


def _activity(ctx: _Context, bucket: str, activity: dict[str, Counter[int]]) -> Activity:
    slots = max(1, -(-(ctx.end_us - ctx.start_us) // ctx.bucket_us))
    points = [
        ActivityPoint(
            start=from_us(ctx.start_us + slot * ctx.bucket_us),
            published=activity["published"][slot],
            received=activity["received"][slot],
            served=activity["served"][slot],
            denied=activity["denied"][slot],
        )
        for slot in range(slots)
    ]
    return Activity(bucket=bucket, points=points)
