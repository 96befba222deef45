"""Writing and reading the audit trail, and answering "did principal X receive object Y, and when?".

A read is recorded as one row with the ``date_added`` range it served, its filters, and the visibility and
collection clock it ran under — never one row per object. Because ``date_added`` is unique and increases in
commit order within a collection, the versions a read served are exactly the stored versions in its range
that pass its filters and visibility; ``deliveries_of`` re-evaluates that. Honest limits: a version deleted
since is no longer known (the DELETE is itself audited); whether a version was still the latest one is
decided against the collection clock seen when the read started, which can only over-report (never miss) a
delivery when a newer version was committed during the read.
"""

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from indicator_exchange.errors import ExchangeError, NotFound
from indicator_exchange.read_routes import READ_ROUTES, ReadRoute, parse_filter
from indicator_exchange.stix.objects import format_timestamp_us
from indicator_exchange.store import audit as store
from indicator_exchange.store import principals
from indicator_exchange.store.models import AuditEvent
from indicator_exchange.store.read_filter import Visibility

# A key's last_used_at is refreshed at most this often, so a busy key costs no extra write per request.
LAST_USED_RESOLUTION_SECONDS = 60


def outcome_of(status_code: int) -> str:
    if status_code in (401, 403):
        return "denied"
    if status_code == 404:
        return "not-found"
    if status_code == 429:
        return "rate-limited"
    if status_code >= 500:
        return "error"
    if status_code >= 400:
        return "rejected"
    return "ok"


@dataclass(slots=True)
class AuditRecord:
    """What the middleware gathered about one request; written by ``record``."""

    at: datetime
    method: str
    path: str
    status_code: int
    route: str | None = None
    client_addr: str | None = None
    principal_id: uuid.UUID | None = None
    principal_name: str | None = None
    key_id: str | None = None
    key_last_used_at: datetime | None = None
    key_touched: bool = False
    api_root: str | None = None
    collection_id: uuid.UUID | None = None
    object_id: str | None = None
    filters: dict[str, list[str]] | None = None
    object_count: int | None = None
    date_added_first: int | None = None
    date_added_last: int | None = None
    clearance: int | None = None
    default_tlp: int | None = None
    collection_clock: int | None = None
    detail: str | None = None
    outcome: str | None = None  # default: from the status code (``errors.Hidden`` is a 404 but a denial)
    # A failed authentication (or one refused by the failure throttle): aggregated by ``audit.writer``.
    auth_failed: bool = False
    request_id: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    # Stored with the row: a write retried after an unacknowledged commit finds the row and does not repeat it.
    record_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # Set when the row met an outage and was spooled: its commit may have landed unacknowledged.
    spooled: bool = False


def record(session: Session, entry: AuditRecord) -> None:
    """Append one audit row (in the caller's short transaction, apart from the request's own).

    Also refreshes the key's ``last_used_at`` when it is older than a minute, so a request costs one extra
    write transaction, not two. Quotas are charged apart (``auth.limits.charge_quota``).
    """
    if entry.principal_id is None and entry.key_id is not None:
        found = principals.key_with_principal(session, entry.key_id)
        if found is not None:
            entry.principal_id, entry.principal_name = found[1].id, found[1].name
    store.add_event(
        session,
        at=entry.at,
        principal_id=entry.principal_id,
        principal_name=entry.principal_name,
        key_id=entry.key_id,
        client_addr=entry.client_addr,
        method=entry.method,
        path=entry.path[:2000],
        route=entry.route,
        api_root=None if entry.api_root is None else entry.api_root[:64],
        collection_id=entry.collection_id,
        object_id=None if entry.object_id is None else entry.object_id[:256],
        filters=entry.filters,
        status_code=entry.status_code,
        outcome=entry.outcome or outcome_of(entry.status_code),
        object_count=entry.object_count,
        date_added_first=entry.date_added_first,
        date_added_last=entry.date_added_last,
        clearance=entry.clearance,
        default_tlp=entry.default_tlp,
        collection_clock=entry.collection_clock,
        detail=None if entry.detail is None else entry.detail[:2000],
        request_id=entry.request_id,
        record_id=entry.record_id,
    )
    authenticated = entry.principal_id is not None and entry.status_code != 401
    if authenticated and entry.key_id is not None and _stale(entry.key_last_used_at, entry.at):
        principals.touch_key(session, entry.key_id, entry.at)
        entry.key_touched = True


def _stale(last_used_at: datetime | None, now: datetime) -> bool:
    return last_used_at is None or (now - last_used_at).total_seconds() >= LAST_USED_RESOLUTION_SECONDS


def record_command(session: Session, *, at: datetime, command: str, operator: str | None, detail: str) -> None:
    """Audit a configuration change made with the CLI (there is no key: the operator is the OS user)."""
    store.add_event(
        session,
        at=at,
        principal_name=operator,
        client_addr="cli",
        method="CLI",
        path=command,
        route=command,
        status_code=0,
        outcome="ok",
        detail=detail[:2000],
    )


def event_dict(event: AuditEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "principal_id": None if event.principal_id is None else str(event.principal_id),
        "principal_name": event.principal_name,
        "key_id": event.key_id,
        "client_addr": event.client_addr,
        "method": event.method,
        "path": event.path,
        "route": event.route,
        "api_root": event.api_root,
        "collection_id": None if event.collection_id is None else str(event.collection_id),
        "object_id": event.object_id,
        "filters": event.filters,
        "status_code": event.status_code,
        "outcome": event.outcome,
        "object_count": event.object_count,
        "date_added_first": _timestamp(event.date_added_first),
        "date_added_last": _timestamp(event.date_added_last),
        "detail": event.detail,
    }


def _timestamp(micros: int | None) -> str | None:
    return None if micros is None else format_timestamp_us(micros)


def list_events(
    session: Session,
    *,
    principal: str | None = None,
    collection_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, object]]:
    """Audit events, newest first, as plain dicts (what ``--json`` prints and the admin API answers)."""
    principal_id = None
    if principal is not None:
        principal_id = _principal_id(session, principal)
    since, until = _aware(since), _aware(until)
    events = store.list_events(
        session,
        principal_id=principal_id,
        collection_id=collection_id,
        since=since,
        until=until,
        before_id=before_id,
        limit=max(1, min(limit, 1000)),
    )
    return [event_dict(e) for e in events]


def _aware(moment: datetime | None) -> datetime | None:
    """Times without an offset are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _principal_id(session: Session, principal: uuid.UUID | str) -> uuid.UUID:
    if isinstance(principal, uuid.UUID):
        return principal
    found = principals.get_principal(session, principal)
    if found is not None:
        return found.id
    try:
        by_id = principals.get_principal_by_id(session, uuid.UUID(principal))
    except ValueError:
        by_id = None
    if by_id is None:
        raise NotFound(f"there is no principal {principal!r}")
    return by_id.id


# --- deliveries ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One version of the object that one audited read served to the principal."""

    event_id: int
    at: datetime
    principal_id: uuid.UUID
    key_id: str | None
    collection_id: uuid.UUID
    kind: str
    version: str | None
    date_added: int

    def as_dict(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "at": self.at.isoformat(),
            "principal_id": str(self.principal_id),
            "key_id": self.key_id,
            "collection_id": str(self.collection_id),
            "kind": self.kind,
            "version": self.version,
            "date_added": format_timestamp_us(self.date_added),
        }


def deliveries_of(
    session: Session, object_id: str, principal: uuid.UUID | str, *, kinds: frozenset[str] | None = None
) -> list[Delivery]:
    """Every audited read in which ``principal`` (id or name) was served a version of ``object_id``, oldest
    first. ``kinds`` narrows to ``objects`` (content) and/or ``manifest``/``versions`` (metadata).

    A version with ``date_added`` d was served by a successful read iff d lies in the read's served range, the
    version was within the visibility recorded for the read, and it passes the read's filters as they stood
    when it ran (``match[version]=last`` means no newer version had been committed to the collection then).
    """
    principal_id = _principal_id(session, principal)
    stored = store.versions_of(session, object_id)
    by_collection: dict[uuid.UUID, list[store.StoredVersion]] = {}
    for version in stored:
        by_collection.setdefault(version.collection_id, []).append(version)
    found: list[Delivery] = []
    for collection_id, versions in by_collection.items():
        low = min(v.date_added for v in versions)
        high = max(v.date_added for v in versions)
        for event in store.reads_covering(
            session, principal_id=principal_id, collection_id=collection_id, low=low, high=high
        ):
            route = READ_ROUTES.get(event.route or "")
            if route is None or (kinds is not None and route.kind not in kinds):
                continue
            for version in _served(event, route, object_id, versions):
                found.append(
                    Delivery(
                        event_id=event.id,
                        at=event.at,
                        principal_id=principal_id,
                        key_id=event.key_id,
                        collection_id=collection_id,
                        kind=route.kind,
                        version=version.modified,
                        date_added=version.date_added,
                    )
                )
    found.sort(key=lambda d: (d.at, d.event_id, d.date_added))
    return found


def _served(
    event: AuditEvent, route: ReadRoute, object_id: str, versions: list[store.StoredVersion]
) -> list[store.StoredVersion]:
    first, last = event.date_added_first, event.date_added_last
    if first is None or last is None or event.clearance is None:
        return []
    if route.object_scoped and event.object_id != object_id:
        return []
    try:
        filters = parse_filter(event.filters or {}, allow=route.allow, default_limit=1, max_limit=1)
    except ExchangeError:
        return []  # a read whose filters do not parse was refused, so it served nothing
    if route.all_versions:
        filters = replace(filters, version_keywords=("all",))
    # Versions committed at or before this clock existed when the read ran (date_added is in commit order).
    clock = max(event.collection_clock or last, last)
    existing = [v for v in versions if v.date_added <= clock]
    served = []
    for version in versions:
        if not first <= version.date_added <= last:
            continue
        visibility = Visibility(clearance=event.clearance, default_tlp=_default_tlp(event, version))
        if filters.admits(
            stix_id=object_id,
            stix_type=version.stix_type,
            spec_version=version.spec_version,
            version=version.version,
            tlp=version.tlp,
            date_added=version.date_added,
            is_first=not any(v.version < version.version for v in existing),
            is_latest=not any(v.version > version.version for v in existing),
            visibility=visibility,
        ):
            served.append(version)
    return served


def _default_tlp(event: AuditEvent, version: store.StoredVersion) -> int:
    return event.default_tlp if event.default_tlp is not None else version.default_tlp
