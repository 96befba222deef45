"""The "published" section: our indicators created, versioned, revoked and expired in the window."""

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from indicator_exchange.reports import kinds
from indicator_exchange.reports.context import ReportContext, loads_object, to_us
from indicator_exchange.reports.model import Breakdown, Counts, Published
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store import reports as store


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


def published_section(session: Session, ctx: ReportContext, activity: Counter[int], now: datetime) -> Published:
    versions: dict[tuple[str, int], _Event] = {}
    revoking: dict[str, tuple[int, _Event]] = {}
    for row in store.versions_added(session, ctx.scope, start_us=ctx.start_us, end_us=ctx.end_us, types=["indicator"]):
        if ctx.origin(row.added_by, row.created_by_ref, row.collection_id)[0] != "ours":
            continue
        key = (row.stix_id, row.version)
        if key in versions:  # the same version stored in a second collection is not a second event
            continue
        obj = loads_object(row.raw)
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
        by_kind=[Breakdown(key=k, label=kinds.KIND_LABELS[k], counts=_counts(tally, _is_kind(k))) for k in kinds.KINDS],
        by_tlp=[Breakdown(key=t.label, label=f"TLP:{t.label.upper()}", counts=_counts(tally, _is_tlp(t))) for t in Tlp],
        by_campaign=_grouped(tally, lambda e: campaigns.get(e.stix_id) or [("none", "(no campaign)")]),
        by_detector=_grouped(tally, lambda e: _detector_keys(e, detectors, names)),
    )


def _is_kind(kind: str) -> Callable[[_Event], bool]:
    return lambda event: event.kind == kind


def _is_tlp(level: Tlp) -> Callable[[_Event], bool]:
    return lambda event: event.tlp == int(level)


def _expired(session: Session, ctx: ReportContext, now: datetime) -> list[_Event]:
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
        obj = loads_object(row.raw)
        try:
            valid_until = parse_timestamp_us(obj.get("valid_until"))
        except InvalidObject:
            continue
        if ctx.start_us <= valid_until < until:
            found[row.stix_id] = _Event(
                row.stix_id, kinds.kind_of_pattern(obj.get("pattern")), row.tlp, row.created_by_ref
            )
            ctx.mark(row.tlp)
    return list(found.values())


def _campaigns(session: Session, ctx: ReportContext, indicator_ids: set[str]) -> dict[str, list[tuple[str, str]]]:
    """indicator id -> [(campaign id, campaign name)] through ``indicates`` relationships."""
    if not indicator_ids:
        return {}
    links: dict[str, set[str]] = defaultdict(set)
    for row in store.latest_versions(session, ctx.scope, stix_type="relationship", containing='"indicates"'):
        obj = loads_object(row.raw)
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
        name = loads_object(row.raw).get("name")
        names[row.stix_id] = str(name) if name else row.stix_id
    return {
        indicator: sorted((campaign, names.get(campaign, campaign)) for campaign in campaigns)
        for indicator, campaigns in links.items()
    }


def _identity_names(session: Session, ctx: ReportContext) -> dict[str, str]:
    names = {p.identity_ref: p.name for p in ctx.principals.values() if p.identity_ref}
    for row in store.latest_versions(session, ctx.scope, stix_type="identity"):
        name = loads_object(row.raw).get("name")
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
    return sorted(
        rows, key=lambda b: (-(b.counts.created + b.counts.versioned + b.counts.revoked + b.counts.expired), b.label)
    )
