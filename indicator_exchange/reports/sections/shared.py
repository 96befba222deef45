"""The "shared" section: what the audit trail says each partner read, with the TLP levels served."""

import uuid
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from indicator_exchange.reports.context import ReportContext, from_us, to_us
from indicator_exchange.reports.model import Shared, SharedRow
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.stix.objects import InvalidObject, parse_timestamp_us
from indicator_exchange.store import report_audit
from indicator_exchange.store.models import Collection

UNAUTHENTICATED = "(unauthenticated)"


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


def shared_section(session: Session, ctx: ReportContext, activity: dict[str, Counter[int]]) -> Shared:
    if not report_audit.audit_available():
        return Shared(available=False, note="this store has no audit trail; sharing figures are not available")
    if ctx.partner is None and ctx.partner_source is not None:
        return Shared(available=True, note=f"{ctx.partner_source} is a feed source: nothing is served to it")
    groups: dict[tuple[str, str | None], _Access] = {}
    served_events: dict[tuple[str, str | None], list[report_audit.AuditRow]] = defaultdict(list)
    clearance_of: dict[str, int] = {}
    for row in report_audit.audit_rows(
        session,
        start=from_us(ctx.start_us),
        end=from_us(ctx.end_us),
        collection_ids=ctx.scope.collection_ids,
        principal_id=ctx.partner.id if ctx.partner else None,
    ):
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
        rows.append(
            SharedRow(
                partner=name,
                collection_id=collection_id,
                collection_title=collection.title if collection else None,
                requests=group.requests,
                objects_served=group.served,
                tlp_served=tlp_served.get((name, collection_id), {}),
                first_access=group.first,
                last_access=group.last,
                denied=group.denied,
            )
        )
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


def _collection(ctx: ReportContext, collection_id: str | None) -> Collection | None:
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
    session: Session,
    ctx: ReportContext,
    events: dict[tuple[str, str | None], list[report_audit.AuditRow]],
    clearance_of: dict[str, int],
) -> dict[tuple[str, str | None], dict[str, int]]:
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
            if not (
                ("last" in versions and is_last)
                or ("first" in versions and is_first)
                or _exact_version(versions, candidate.version)
            ):
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
