"""TAXII 2.1 operations over the store: resolve resources, write envelopes, serve pages."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson
from sqlalchemy.orm import Session

from indicator_exchange.auth import policy
from indicator_exchange.auth.service import Caller, require_grant, require_read, require_write, visibility_for
from indicator_exchange.errors import BadRequest, Hidden, NotFound, NotPermitted, PayloadTooLarge
from indicator_exchange.lifecycle import feedback
from indicator_exchange.settings import Settings
from indicator_exchange.stix.markings import tlp_of
from indicator_exchange.stix.objects import (
    InvalidObject,
    ObjectMeta,
    canonical_json,
    format_timestamp_us,
    inspect_object,
    loads_exact,
)
from indicator_exchange.stix.validation import STRICT, validate_object
from indicator_exchange.store import catalog, ownership
from indicator_exchange.store import objects as store
from indicator_exchange.store.catalog import CollectionEntry
from indicator_exchange.store.models import ApiRoot, Collection, Status
from indicator_exchange.store.read_ahead import PageRead, PollKey, ReadAhead, poll_key
from indicator_exchange.taxii.filters import PageRequest, check_cursor, encode_cursor
from indicator_exchange.taxii.media import STIX_MEDIA_TYPE

_ECHOED = 256  # characters of a client's id or version echoed into a status (a status row stays small)


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    headers: dict[str, str]
    count: int
    first_added: int | None
    last_added: int | None
    clock: int | None = None  # the collection's clock the page was read under, when the read knows it
    more: bool = False  # the page was full: more follows at once (a stream reads on before it waits)
    # The page's objects as stored (reads of objects only): a stream frames them itself, without the envelope.
    objects: Sequence[bytes] = ()


class StaleCache(Exception):
    """A page's statement found another auth epoch than the one the caller and catalog were cached under."""


def now_us() -> int:
    moment = datetime.now(UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def resolve_root(session: Session, name: str, caller: Caller) -> ApiRoot:
    """The API root, if the caller may see it: one with no collection the caller has a grant on answers as
    one that does not exist (non-disclosure, as for collections: ``authorise``)."""
    root = catalog.get_api_root(session, name)
    if root is None:
        raise NotFound(f"there is no API root {name!r}")
    if not caller.is_admin and not any(caller.sees(c.id) for c in catalog.list_collections(session, root.id)):
        raise Hidden(f"there is no API root {name!r}", reason="no grant on any collection of this API root")
    return root


def resolve_collection(session: Session, root: ApiRoot, key: str) -> Collection:
    """The collection, whoever asks: the route notes it for the audit trail, then calls ``authorise``."""
    collection = catalog.find_collection(session, root.id, key)
    if collection is None:
        raise NotFound(_no_collection(root, key))
    return collection


def _no_collection(root: ApiRoot, key: str) -> str:
    return f"there is no collection {key!r} in API root {root.name!r}"


def authorise(
    caller: Caller, root: ApiRoot, key: str, collection: Collection, *, read: bool = False, write: bool = False
) -> None:
    """TAXII 2.1 §5's permission tables: a collection the caller has no grant on answers exactly as one that
    does not exist (404, same body); a grant without a right the operation needs is 403."""
    hidden = Hidden(_no_collection(root, key), reason="no grant on this collection")
    require_grant(caller, collection, hidden=hidden, read=read, write=write)


def visible_roots(session: Session, caller: Caller) -> list[ApiRoot]:
    return [
        root
        for root in catalog.list_api_roots(session)
        if caller.is_admin or any(caller.sees(c.id) for c in catalog.list_collections(session, root.id))
    ]


def collection_resource(collection: Collection, caller: Caller) -> dict[str, object]:
    access = caller.access(collection.id)
    resource: dict[str, object] = {
        "id": str(collection.id),
        "title": collection.title,
        "can_read": access.can_read,
        "can_write": access.can_write,
        "media_types": [STIX_MEDIA_TYPE],
    }
    if collection.description:
        resource["description"] = collection.description
    if collection.alias:
        resource["alias"] = collection.alias
    return resource


def _visibility(caller: Caller, collection: Collection | CollectionEntry) -> store.Visibility:
    return visibility_for(caller, collection)


def _detail(stix_id: object, version: str, message: str | None = None) -> dict[str, object]:
    # Echoed client text may hold NUL, which PostgreSQL's JSONB (where statuses live) cannot store.
    detail: dict[str, object] = {
        "id": stix_id[:_ECHOED].replace("\x00", "\ufffd") if isinstance(stix_id, str) else "",
        "version": version[:_ECHOED].replace("\x00", "\ufffd"),
    }
    if message:
        detail["message"] = message.replace("\x00", "\ufffd")
    return detail


def parse_envelope(body: bytes, *, max_objects: int) -> list[object]:
    """The ``objects`` of a TAXII envelope; ``BadRequest`` if the body is not one, ``PayloadTooLarge`` if it
    carries more than ``max_objects``, found before any object is looked at."""
    # The count comes from orjson's parse (C, no per-object Python work): bounded by IX_MAX_CONTENT_LENGTH, and
    # nothing per object (checks, validation, status entries) has run when the 413 is raised.
    try:
        envelope = loads_exact(body)
    except ValueError as exc:  # UnicodeDecodeError is one
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise BadRequest("the body must be a TAXII envelope: a JSON object with an 'objects' list")
    objects = envelope.get("objects")
    if not isinstance(objects, list):
        raise BadRequest("the envelope must carry an 'objects' list")
    if len(objects) > max_objects:
        raise PayloadTooLarge(
            f"the envelope carries {len(objects):,} objects; at most {max_objects:,} per request "
            f"(IX_MAX_OBJECTS_PER_ENVELOPE): send them in several envelopes"
        )
    return objects


def add_objects(
    session: Session,
    *,
    root: ApiRoot,
    collection: Collection,
    caller: Caller,
    objects: list[object],
    max_failures: int = 1000,
    lifecycle: Settings | None = None,
) -> Status:
    """Store an envelope's objects; each one succeeds or fails on its own and is reported in the status.

    A ``strict`` collection validates each object as STIX 2.1 (``stix.validation``); an invalid one is a failure
    naming the property, and is never stored. Clearance and the write rules of ``auth.policy`` are checked per
    object; the ownership they need is read under the collection's write lock, so two writers cannot both
    create the first version of one id. The status lists at most ``max_failures`` failures (``_bounded``).
    """
    strict = collection.validation == STRICT
    require_write(caller, collection)
    request_time = now_us()
    failures: list[dict[str, object]] = []
    successes: list[dict[str, object]] = []
    checked: list[tuple[ObjectMeta, dict[str, object], store.NewVersion]] = []
    for index, obj in enumerate(objects):
        try:
            meta = inspect_object(obj)
            assert isinstance(obj, dict)
            invalid = validate_object(obj) if strict else None
            if invalid is not None:
                raise InvalidObject(invalid)
            raw = canonical_json(obj)
        except InvalidObject as exc:
            ident = obj.get("id") if isinstance(obj, dict) else None
            failures.append(_detail(ident, _version_text(obj), f"objects[{index}]: {exc}"))
            continue
        level = tlp_of(obj)
        effective = collection.default_tlp if level is None else int(level)
        if effective > caller.clearance:
            failures.append(_detail(meta.stix_id, meta.modified or "", "marked above your clearance; not stored"))
            continue
        version = store.NewVersion(
            stix_id=meta.stix_id,
            stix_type=meta.stix_type,
            spec_version=meta.spec_version,
            version=meta.version,
            modified=meta.modified,
            tlp=None if level is None else int(level),
            created_by_ref=meta.created_by_ref,
            revoked=meta.revoked,
            raw=raw,
        )
        checked.append((meta, obj, version))

    candidates: list[tuple[store.NewVersion, str]] = []
    accepted: list[dict[str, object]] = []  # feedback the lifecycle takes (sightings, opinions)
    if checked:
        store.lock_collection(session, collection.id)
        owned = {} if caller.is_admin else ownership.owners(session, collection.id, {m.stix_id for m, _, _ in checked})
        identities = (
            ownership.principal_identities(session)
            if not caller.is_admin and any(m.stix_type == "identity" for m, _, _ in checked)
            else set()
        )
        for meta, obj, version in checked:
            verdict, message = policy.write_verdict(
                caller, meta, obj, stored=owned.get(meta.stix_id), principal_identities=identities
            )
            if verdict == policy.STORE and lifecycle is not None:
                verdict, message = feedback.screen(session, caller, obj, accepted)  # docs/lifecycle.md#feedback
            if verdict == policy.STORE:
                candidates.append((version, meta.modified or ""))
            elif verdict == policy.ACKNOWLEDGE:
                successes.append(_detail(meta.stix_id, meta.modified or "", message))
            else:
                failures.append(_detail(meta.stix_id, meta.modified or "", message))

    if candidates:
        outcome = store.write_versions(
            session,
            collection.id,
            [c[0] for c in candidates],
            now_us=request_time,
            added_by=caller.principal_id,
        )
        for (version, version_text), result, added in zip(candidates, outcome.results, outcome.added, strict=True):
            shown = version_text or (format_timestamp_us(added) if added else "")
            if result == "conflict":
                failures.append(
                    _detail(version.stix_id, shown, "a different object with this id and version is stored")
                )
            else:
                successes.append(_detail(version.stix_id, shown))
        if lifecycle is not None:
            feedback.record(session, collection_id=collection.id, objects=accepted, caller=caller, settings=lifecycle)
    status = Status(
        id=uuid.uuid4(),
        api_root_id=root.id,
        collection_id=collection.id,
        principal_id=caller.principal_id,
        status="complete",
        request_timestamp=format_timestamp_us(request_time),
        total_count=len(objects),
        success_count=len(successes),
        failure_count=len(failures),
        pending_count=0,
        successes=successes,
        failures=_bounded(failures, max_failures),
        pendings=[],
    )
    return catalog.add_status(session, status)


def _bounded(failures: list[dict[str, object]], limit: int) -> list[dict[str, object]]:
    """At most ``limit`` entries: the last one kept also says how many more failures there were (not listed;
    ``failure_count`` stays exact), so a status row stays small whatever the envelope."""
    if len(failures) <= limit:
        return failures
    last = dict(failures[limit - 1])
    more = (
        f"and {len(failures) - limit:,} more failures are not listed (IX_MAX_STATUS_FAILURES = {limit:,}; "
        "failure_count counts them all)"
    )
    last["message"] = f"{last['message']}; {more}" if last.get("message") else more
    return [*failures[: limit - 1], last]


def _version_text(obj: object) -> str:
    if isinstance(obj, dict):
        for key in ("modified", "created"):
            if isinstance(obj.get(key), str):
                return str(obj[key])
    return ""


def status_resource(status: Status) -> dict[str, object]:
    return {
        "id": str(status.id),
        "status": status.status,
        "request_timestamp": status.request_timestamp,
        "total_count": status.total_count,
        "success_count": status.success_count,
        "successes": status.successes,
        "failure_count": status.failure_count,
        "failures": status.failures,
        "pending_count": status.pending_count,
        "pendings": status.pendings,
    }


def get_status(session: Session, *, root: ApiRoot, status_id: str, caller: Caller) -> Status:
    try:
        key = uuid.UUID(status_id)
    except ValueError:
        raise NotFound(f"there is no status {status_id!r}") from None
    status = catalog.get_status(session, root.id, key)
    if status is None:
        raise NotFound(f"there is no status {status_id!r}")
    if status.principal_id != caller.principal_id and not caller.is_admin:  # a 403 would confirm the id
        raise Hidden(f"there is no status {status_id!r}", reason="the status resource of another principal")
    return status


def _headers(first_added: int | None, last_added: int | None) -> dict[str, str]:
    if first_added is None or last_added is None:
        return {}
    return {
        "X-TAXII-Date-Added-First": format_timestamp_us(first_added),
        "X-TAXII-Date-Added-Last": format_timestamp_us(last_added),
    }


def _envelope_head(last_added: int | None, more: bool, collection_id: uuid.UUID, filters: store.ReadFilter) -> bytes:
    """``filters``: those of the read (its ``next`` token is bound to them and to the collection)."""
    head = b'{"more":' + (b"true" if more else b"false")
    if more and last_added is not None:
        head += b',"next":' + orjson.dumps(encode_cursor(collection_id, filters, last_added))
    return head


def read_objects(
    session: Session,
    *,
    collection: Collection | CollectionEntry,
    caller: Caller,
    page: PageRequest,
    object_id: str | None = None,
    expected_epoch: int | None = None,
    read_ahead: ReadAhead | None = None,
    current: tuple[int | None, int | None] | None = None,
) -> Page:
    """A page of objects as a TAXII envelope, built from the stored JSON without re-serialising it.

    ``expected_epoch``: the auth epoch ``caller`` and ``collection`` were cached under; ``StaleCache`` if the
    page's own statement finds another one (nothing is answered from stale grants or catalog).
    ``read_ahead`` (with ``expected_epoch``, PostgreSQL): serve the page from it when it was read ahead and is
    still current, and read the next page ahead when there is one. ``current``: the collection's clock and the
    auth epoch on the primary, read by the caller (``session`` is then a replica's, whose own would not do).
    """
    require_read(caller, collection)
    filters = page.filters
    if object_id is not None:
        filters = store.ReadFilter(
            ids=[object_id],
            spec_versions=filters.spec_versions,
            version_keywords=filters.version_keywords,
            version_values=filters.version_values,
            added_after=filters.added_after,
        )
    try:
        check_cursor(page, collection.id, filters)
    except BadRequest:
        if expected_epoch is not None:  # the caller is as cached: the checked path answers, with fresh grants
            raise StaleCache from None
        raise
    visibility = _visibility(caller, collection)
    key = None
    if read_ahead is not None and read_ahead.enabled and expected_epoch is not None and object_id is None:
        key = poll_key(caller.principal_id, collection.id, visibility, filters, after=page.after, limit=page.limit)
    ready = _page_read_ahead(session, read_ahead, key, current) if key is not None and read_ahead is not None else None
    if ready is None:
        checked = store.read_page_joined(
            session, collection.id, filters, visibility, after=page.after, limit=page.limit
        )
        body = None
    else:
        checked, body = ready
    if expected_epoch is not None and checked.epoch != expected_epoch:
        raise StaleCache
    joined = checked.page
    missing = object_id is not None and not joined.count
    if missing and not store.object_exists(session, collection.id, str(object_id), visibility):
        raise NotFound(f"there is no object {object_id!r} in this collection")
    if body is None:
        body = _envelope(joined, collection.id, filters)
    if key is not None and read_ahead is not None and joined.more:
        read_next_page(read_ahead, key, collection.id, filters, visibility, joined.last_added)
    return page_of(checked, body)


def page_of(checked: store.CheckedPage, body: bytes) -> Page:
    """A page as served, from a page as read and its envelope."""
    joined = checked.page
    headers = _headers(joined.first_added, joined.last_added)
    return Page(
        body, headers, joined.count, joined.first_added, joined.last_added, checked.clock, joined.more, joined.objects
    )


def _envelope(joined: store.JoinedPage, collection_id: uuid.UUID, filters: store.ReadFilter) -> bytes:
    """The envelope of a page: the stored JSON of its objects joined, without parsing it."""
    head = _envelope_head(joined.last_added, joined.more, collection_id, filters)
    if joined.count:
        # One copy of the page's bytes: the objects and their separators joined once (a page is ~1 MB).
        pieces: list[bytes] = [b""] * (2 * joined.count + 1)
        pieces[0] = head + b',"objects":['
        pieces[1::2] = joined.objects
        pieces[2::2] = [b","] * (joined.count - 1) + [b"]}"]
        return b"".join(pieces)
    return head + b"}"


def _page_read_ahead(
    session: Session, read_ahead: ReadAhead, key: PollKey, current: tuple[int | None, int | None] | None
) -> PageRead | None:
    """The page read ahead for ``key``, if it is still what a read now would return."""
    ready = read_ahead.take(key)
    if ready is None:
        return None
    if current is None:
        current = store.clock_and_epoch_pg(session.connection().connection.dbapi_connection, key.collection_id)
    clock, epoch = current
    return ready if read_ahead.accept(ready[0], clock=clock, epoch=epoch) else None


def read_next_page(
    read_ahead: ReadAhead,
    key: PollKey,
    collection_id: uuid.UUID,
    filters: store.ReadFilter,
    visibility: store.Visibility,
    last_added: int | None,
) -> None:
    """Start reading the page after this one, on the read-ahead thread."""

    def read(own: Session) -> PageRead:
        checked = store.read_page_joined(own, collection_id, filters, visibility, after=last_added, limit=key.limit)
        return checked, _envelope(checked.page, collection_id, filters)

    read_ahead.start(replace(key, after=last_added), read)


def _first(rows: list[store.ObjectRow]) -> int | None:
    return rows[0].date_added if rows else None


def _last(rows: list[store.ObjectRow]) -> int | None:
    return rows[-1].date_added if rows else None


def _version_of(row: store.ObjectRow) -> str:
    return row.modified or format_timestamp_us(row.date_added)


def read_manifest(session: Session, *, collection: Collection, caller: Caller, page: PageRequest) -> Page:
    require_read(caller, collection)
    check_cursor(page, collection.id, page.filters)
    rows, more = store.read_page(
        session,
        collection.id,
        page.filters,
        _visibility(caller, collection),
        after=page.after,
        limit=page.limit,
        with_raw=False,
    )
    body = _envelope_head(_last(rows), more, collection.id, page.filters)
    if rows:
        records = [
            {
                "id": row.stix_id,
                "date_added": format_timestamp_us(row.date_added),
                "version": _version_of(row),
                "media_type": STIX_MEDIA_TYPE,
            }
            for row in rows
        ]
        body += b',"objects":' + orjson.dumps(records)
    body += b"}"
    return Page(body, _headers(_first(rows), _last(rows)), len(rows), _first(rows), _last(rows), more=more)


def read_versions(
    session: Session, *, collection: Collection, caller: Caller, page: PageRequest, object_id: str
) -> Page:
    require_read(caller, collection)
    filters = store.ReadFilter(ids=[object_id], spec_versions=page.filters.spec_versions, version_keywords=("all",))
    check_cursor(page, collection.id, filters)
    visibility = _visibility(caller, collection)
    rows, more = store.read_page(
        session, collection.id, filters, visibility, after=page.after, limit=page.limit, with_raw=False
    )
    if not rows and not store.object_exists(session, collection.id, object_id, visibility):
        raise NotFound(f"there is no object {object_id!r} in this collection")
    body = _envelope_head(_last(rows), more, collection.id, filters)
    if rows:
        body += b',"versions":' + orjson.dumps([_version_of(row) for row in rows])
    body += b"}"
    return Page(body, _headers(_first(rows), _last(rows)), len(rows), _first(rows), _last(rows), more=more)


def delete_object(
    session: Session, *, collection: Collection, caller: Caller, page: PageRequest, object_id: str
) -> int:
    """Delete versions of one object: read and write grants (TAXII 2.1 §5.7) and ownership of the object (or
    an admin) are needed."""
    require_read(caller, collection)
    require_write(caller, collection)
    visibility = _visibility(caller, collection)
    store.lock_collection(session, collection.id)
    if not store.object_exists(session, collection.id, object_id, visibility):
        raise NotFound(f"there is no object {object_id!r} (with those versions) in this collection")
    owners = set().union(*ownership.owners(session, collection.id, [object_id]).get(object_id, {}).values())
    if not policy.may_delete(caller, owners):
        raise NotPermitted("only the object's creator or an admin may delete it")
    deleted = store.delete_versions(session, collection.id, object_id, page.filters, visibility)
    if deleted == 0:
        raise NotFound(f"there is no object {object_id!r} (with those versions) in this collection")
    return deleted
