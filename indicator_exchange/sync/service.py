"""Pulling partner TAXII feeds into local collections (and pushing local ones out), incrementally.

Guarantees: an object is never lost or stored twice across pages, restarts or timestamp ties.
- Each page is committed together with the source's bookmark (the page's ``X-TAXII-Date-Added-Last``).
- Within a run we follow ``next``; when resuming, or when a server gives no ``next``, we page by
  ``added_after`` = bookmark minus 1 µs: objects sharing the boundary timestamp are fetched again and the
  store's idempotent write (same id and version = success, no new row) absorbs them.
- A server that repeats a ``next`` token, or pages that bring nothing new without the position advancing,
  stop the run as ``loop-detected`` (the bookmark stays at the last real progress).
"""

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.errors import BadRequest, Conflict, NotFound
from indicator_exchange.stix.markings import Tlp, tlp_of
from indicator_exchange.stix.objects import InvalidObject, format_timestamp_us, inspect_object, parse_timestamp_us
from indicator_exchange.store import catalog, sources
from indicator_exchange.store import objects as store
from indicator_exchange.store.engine import session_scope
from indicator_exchange.store.models import FeedSource
from indicator_exchange.sync.taxii_client import RemoteCollection, RemoteError, RetryPolicy

MAX_TIE_LIMIT = 50_000


@dataclass(slots=True)
class SyncResult:
    source: str
    outcome: str = "ok"  # ok | stopped | loop-detected | error
    pages: int = 0
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    retries: int = 0
    error: str | None = None
    bookmark: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.source}: {self.outcome}; {self.pages} pages, {self.received} received, {self.stored} stored, "
            f"{self.duplicates} already present, {self.rejected} rejected, {self.retries} retries; "
            f"bookmark {self.bookmark or '-'}"
        )
        return text + (f"; error: {self.error}" if self.error else "")


PageCallback = Callable[[SyncResult], None]


def resolve_credentials(ref: str | None) -> str | None:
    """Read a credential from where ``ref`` points (``env:VAR`` or ``file:PATH``); never from the database."""
    if not ref:
        return None
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(target)
        if value is None:
            raise BadRequest(f"environment variable {target} (credentials of this source) is not set")
        return value.strip()
    if scheme == "file":
        try:
            return Path(target).read_text().strip()
        except OSError as exc:
            raise BadRequest(f"cannot read the credentials file {target}: {exc.strerror}") from None
    raise BadRequest("credentials must be referenced as env:VARIABLE or file:/path (never given in clear)")


def source_dict(source: FeedSource) -> dict[str, object]:
    return {
        "name": source.name,
        "direction": source.direction,
        "collection_url": source.collection_url,
        "credentials_ref": source.credentials_ref,
        "local_collection_id": str(source.local_collection_id),
        "interval_seconds": source.interval_seconds,
        "page_size": source.page_size,
        "max_tlp": Tlp(source.max_tlp).label,
        "enabled": source.enabled,
        "bookmark": source.bookmark,
        "last_run_at": source.last_run_at.isoformat() if source.last_run_at else None,
        "last_success_at": source.last_success_at.isoformat() if source.last_success_at else None,
        "last_outcome": source.last_outcome,
        "last_error": source.last_error,
        "objects_total": source.objects_total,
        "rejected_total": source.rejected_total,
    }


def collection_url(discovery_or_root: str, api_root: str | None, collection_id: str) -> str:
    """The remote collection URL from a discovery URL (or API root URL), an API root name and an id."""
    base = discovery_or_root.rstrip("/")
    if base.endswith("/taxii2"):
        base = base[: -len("/taxii2")]
        if not api_root:
            raise BadRequest("with a discovery URL, name the remote API root (--api-root)")
    if api_root:
        base = api_root.rstrip("/") if "://" in api_root else f"{base}/{api_root.strip('/')}"
    return f"{base}/collections/{collection_id}/"


def create_source(
    session: Session,
    *,
    name: str,
    url: str,
    api_root: str | None,
    remote_collection: str,
    local_collection: uuid.UUID,
    credentials_ref: str | None,
    interval_seconds: int = 300,
    page_size: int = 1000,
    direction: str = "pull",
    max_tlp: str = "amber",
) -> dict[str, object]:
    if sources.get_source(session, name) is not None:
        raise Conflict(f"source {name!r} already exists")
    if catalog.get_collection_by_id(session, local_collection) is None:
        raise NotFound(f"there is no local collection {local_collection}")
    if direction not in ("pull", "push"):
        raise BadRequest("direction must be pull or push")
    if credentials_ref is not None and not credentials_ref.startswith(("env:", "file:")):
        raise BadRequest("credentials must be referenced as env:VARIABLE or file:/path (never given in clear)")
    source = sources.add_source(
        session,
        FeedSource(
            id=uuid.uuid4(),
            name=name,
            direction=direction,
            collection_url=collection_url(url, api_root, remote_collection),
            credentials_ref=credentials_ref,
            local_collection_id=local_collection,
            interval_seconds=interval_seconds,
            page_size=page_size,
            max_tlp=int(Tlp.parse(max_tlp)),
            enabled=True,
            objects_total=0,
            rejected_total=0,
        ),
    )
    return source_dict(source)


def set_enabled(session: Session, name: str, enabled: bool) -> dict[str, object]:
    source = sources.get_source(session, name)
    if source is None:
        raise NotFound(f"there is no source {name!r}")
    source.enabled = enabled
    session.flush()
    return source_dict(source)


def list_sources(session: Session) -> list[dict[str, object]]:
    return [source_dict(s) for s in sources.list_sources(session)]


def _step_back(bookmark: str | None) -> str | None:
    if not bookmark:
        return None
    try:
        return format_timestamp_us(parse_timestamp_us(bookmark) - 1)
    except InvalidObject:
        return None


def _now_us() -> int:
    moment = datetime.now(UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _store_page(session: Session, source: FeedSource, objects: list[dict[str, object]], result: SyncResult) -> None:
    """Validate and store one page's objects in the local collection; record the invalid ones."""
    rejections: list[tuple[str | None, str]] = []
    versions: list[store.NewVersion] = []
    for obj in objects:
        try:
            meta = inspect_object(obj)
        except InvalidObject as exc:
            ident = obj.get("id")
            rejections.append((ident if isinstance(ident, str) else None, str(exc)))
            continue
        level = tlp_of(obj)
        versions.append(
            store.NewVersion(
                stix_id=meta.stix_id,
                stix_type=meta.stix_type,
                spec_version=meta.spec_version,
                version=meta.version,
                modified=meta.modified,
                tlp=None if level is None else int(level),
                created_by_ref=meta.created_by_ref,
                revoked=meta.revoked,
                raw=orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode(),
            )
        )
    if versions:
        store.lock_collection(session, source.local_collection_id)
        outcome = store.write_versions(session, source.local_collection_id, versions, now_us=_now_us(), added_by=None)
        for version, state in zip(versions, outcome.results, strict=True):
            if state == "conflict":
                rejections.append((version.stix_id, "a different object with this id and version is stored locally"))
        result.stored += outcome.stored
        source.objects_total += outcome.stored
        result.duplicates += outcome.results.count("duplicate")
    if rejections:
        sources.add_rejections(session, source.id, rejections)
    result.rejected += len(rejections)
    source.rejected_total += len(rejections)


def pull(
    sessions: sessionmaker[Session],
    name: str,
    *,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
    on_page: PageCallback | None = None,
) -> SyncResult:
    """Pull one source until the remote has nothing more (or ``stop`` is set); commits page by page."""
    result = SyncResult(source=name)
    with session_scope(sessions) as session:
        source = sources.get_source(session, name)
        if source is None:
            raise NotFound(f"there is no source {name!r}")
        if source.direction != "pull":
            raise BadRequest(f"source {name!r} is a push source")
        source.last_run_at = datetime.now(UTC)
        source_id, url, ref, limit = source.id, source.collection_url, source.credentials_ref, source.page_size
        bookmark = source.bookmark
    result.bookmark = bookmark
    try:
        remote = RemoteCollection(url, secret=resolve_credentials(ref), retry=retry)
        _pull_pages(sessions, source_id, remote, bookmark, limit, result, stop, on_page)
        result.retries = remote.retries
    except (RemoteError, BadRequest) as exc:
        result.outcome, result.error = "error", str(exc)
    with session_scope(sessions) as session:
        source = sources.get_source_by_id(session, source_id)
        assert source is not None
        source.last_outcome = result.outcome
        source.last_error = result.error
        if result.outcome in ("ok", "stopped"):
            source.last_success_at = datetime.now(UTC)
    return result


def _pull_pages(
    sessions: sessionmaker[Session],
    source_id: uuid.UUID,
    remote: RemoteCollection,
    bookmark: str | None,
    limit: int,
    result: SyncResult,
    stop: threading.Event | None,
    on_page: PageCallback | None,
) -> None:
    added_after = _step_back(bookmark)
    next_token: str | None = None
    seen_tokens: set[str] = set()
    seen_objects: set[int] = set()  # hashes of (id, modified) received in this run: what "progress" means
    stalled = 0
    while not (stop and stop.is_set()):
        page = remote.get_page(added_after=added_after, next_token=next_token, limit=limit)
        result.pages += 1
        result.received += len(page.objects)
        keys = {hash((obj.get("id"), obj.get("modified"))) for obj in page.objects}
        fresh = bool(keys - seen_objects)
        seen_objects |= keys
        with session_scope(sessions) as session:
            source = sources.get_source_by_id(session, source_id)
            assert source is not None
            _store_page(session, source, page.objects, result)
            if page.date_added_last:
                source.bookmark = page.date_added_last
            result.bookmark = source.bookmark
        if on_page:
            on_page(result)
        if not page.more or not page.objects:
            return
        # Progress: objects not yet received in this run. Some servers (medallion) legitimately reuse one
        # `next` token for every page, so a repeated token alone is no loop; repeated objects are.
        progressed = fresh
        stalled = 0 if progressed else stalled + 1
        if stalled >= 2 or (page.next_token in seen_tokens and not progressed):
            result.outcome = "loop-detected"
            result.notes.append("the server repeats pages without new objects")
            return
        if page.next_token:
            seen_tokens.add(page.next_token)
            next_token = page.next_token
            continue
        # No `next`: page by date_added. A page whose objects all share one timestamp cannot be passed
        # with an exclusive added_after, so widen the page instead.
        if page.date_added_last is None:
            result.outcome, result.error = "error", "the server gave neither next nor X-TAXII-Date-Added-Last"
            return
        if page.date_added_first == page.date_added_last and not progressed:
            if limit >= MAX_TIE_LIMIT:
                result.outcome, result.error = "error", "too many objects share one date_added to page past them"
                return
            limit *= 2
        next_token = None
        added_after = _step_back(page.date_added_last)
    result.outcome = "stopped"


def push(
    sessions: sessionmaker[Session],
    name: str,
    *,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
    on_page: PageCallback | None = None,
) -> SyncResult:
    """Push new objects of the local collection (up to the source's max TLP) to the remote collection."""
    result = SyncResult(source=name)
    with session_scope(sessions) as session:
        source = sources.get_source(session, name)
        if source is None:
            raise NotFound(f"there is no source {name!r}")
        if source.direction != "push":
            raise BadRequest(f"source {name!r} is a pull source")
        collection = catalog.get_collection_by_id(session, source.local_collection_id)
        assert collection is not None
        visibility = store.Visibility(clearance=source.max_tlp, default_tlp=collection.default_tlp)
        source_id, url, ref, limit = source.id, source.collection_url, source.credentials_ref, source.page_size
        position = int(source.bookmark) if source.bookmark and source.bookmark.isdigit() else None
        local_id = source.local_collection_id
    try:
        remote = RemoteCollection(url, secret=resolve_credentials(ref), retry=retry)
        while not (stop and stop.is_set()):
            with session_scope(sessions) as session:
                rows, more = store.read_page(
                    session,
                    local_id,
                    store.ReadFilter(version_keywords=("all",)),
                    visibility,
                    after=position,
                    limit=limit,
                )
            if not rows:
                break
            status = remote.add_objects([orjson.loads(row.raw or "{}") for row in rows])
            result.pages += 1
            result.received += len(rows)
            result.stored += status["success_count"]
            result.rejected += status["failure_count"]
            position = rows[-1].date_added
            with session_scope(sessions) as session:
                source = sources.get_source_by_id(session, source_id)
                assert source is not None
                source.bookmark = str(position)
                source.objects_total += status["success_count"]
                source.last_run_at = datetime.now(UTC)
            result.bookmark = str(position)
            if on_page:
                on_page(result)
            if not more:
                break
        else:
            result.outcome = "stopped"
        result.retries = remote.retries
    except (RemoteError, BadRequest) as exc:
        result.outcome, result.error = "error", str(exc)
    with session_scope(sessions) as session:
        source = sources.get_source_by_id(session, source_id)
        assert source is not None
        source.last_outcome, source.last_error = result.outcome, result.error
        if result.outcome in ("ok", "stopped"):
            source.last_success_at = datetime.now(UTC)
    return result
