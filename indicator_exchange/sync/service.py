"""Pulling partner TAXII feeds into local collections (and pushing local ones out), incrementally.

Guarantees: an object is never lost or stored twice across pages, restarts or timestamp ties.
- Each page is committed together with the source's bookmark (the page's ``X-TAXII-Date-Added-Last``).
- Within a run we follow ``next``; when resuming, or when a server gives no ``next``, we page by
  ``added_after`` = bookmark minus 1 µs: objects sharing the boundary timestamp are fetched again and the
  store's idempotent write (same id and version = success, no new row) absorbs them.
- A server that repeats a ``next`` token, or pages that bring nothing new without the position advancing,
  stop the run as ``loop-detected`` (the bookmark stays at the last real progress). A page the server
  emptied by filtering, with ``more`` and a new ``next``, is followed (up to ``MAX_EMPTY_PAGES`` in a row).
- Invalid objects are recorded in ``sync_rejection`` once per (id, reason), although the boundary
  timestamp is read again on every run.
- Network errors, broken bodies, 5xx and 429 are retried with backoff; setting ``stop`` ends a run after
  the current page, or at once while waiting to retry. When a retried ``next`` request may have been served
  before its answer was lost (server-side paging state, as in medallion), its page is not trusted: paging
  starts again from the bookmark, with larger pages if that makes no progress (``MAX_RESTARTS`` times).
"""

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from sqlalchemy.orm import Session, sessionmaker

from indicator_exchange.errors import BadRequest, Conflict, NotFound
from indicator_exchange.lifecycle import feedback
from indicator_exchange.stix.markings import Tlp
from indicator_exchange.stix.objects import InvalidObject, format_timestamp_us, inspect_object, parse_timestamp_us
from indicator_exchange.stix.validation import STRICT, validate_object
from indicator_exchange.store import catalog, sources
from indicator_exchange.store import objects as store
from indicator_exchange.store.engine import session_scope
from indicator_exchange.store.models import FeedSource
from indicator_exchange.sync.taxii_client import Interrupted, RemoteCollection, RemoteError, RemotePage, RetryPolicy
from indicator_exchange.wording import plural

MAX_TIE_LIMIT = 50_000
MAX_EMPTY_PAGES = 100
MAX_RESTARTS = 20


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
            f"{self.source}: {self.outcome}; {plural(self.pages, 'page')}, {self.received} received, "
            f"{self.stored} stored, {self.duplicates} already present, {self.rejected} rejected, "
            f"{plural(self.retries, 'retry')}; "
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
        "live": live_status(source),
    }


def live_status(source: FeedSource, *, now: datetime | None = None) -> dict[str, object]:
    """The ``sync --follow`` status: how it follows, whether a follower is connected now (it heard from the
    partner recently: a killed follower cannot clear its own flag), its position and how far behind the
    partner's last reported position it is (seconds of ``date_added``)."""
    now = now or datetime.now(UTC)
    patience = 60.0 if source.live_mode != "poll" else 2.0 * source.interval_seconds + 60.0
    seen = source.live_seen_at
    connected = source.live_connected_at is not None and seen is not None and (now - seen).total_seconds() < patience
    lag = None
    if source.bookmark and source.live_remote_position:
        try:
            behind = parse_timestamp_us(source.live_remote_position) - parse_timestamp_us(source.bookmark)
            lag = max(0.0, behind / 1_000_000)
        except InvalidObject:
            lag = None
    return {
        "mode": source.live_mode,
        "connected": connected,
        "connected_at": source.live_connected_at.isoformat() if source.live_connected_at else None,
        "seen_at": seen.isoformat() if seen else None,
        "position": source.bookmark,
        "remote_position": source.live_remote_position,
        "lag_seconds": lag,
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
    if any("@" in urlsplit(given).netloc for given in (url, api_root or "")):
        raise BadRequest("the URL carries credentials: reference them with env:VARIABLE or file:/path instead")
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


def store_batch(session: Session, source: FeedSource, objects: list[object], result: SyncResult) -> None:
    """Store one batch received from ``source`` in the caller's transaction (which also moves the bookmark)."""
    result.received += len(objects)
    _store_page(session, source, objects, result)


def _store_page(session: Session, source: FeedSource, objects: list[object], result: SyncResult) -> None:
    """Validate and store one page's objects in the local collection; record the invalid ones (once).

    The local collection's policy decides the validation: ``strict`` checks each object as STIX 2.1
    (``stix.validation``), ``basic`` only its common properties."""
    collection = catalog.get_collection_by_id(session, source.local_collection_id)
    strict = collection is not None and collection.validation == STRICT
    rejections: list[tuple[str | None, str]] = []
    versions: list[store.NewVersion] = []
    for obj in objects:
        try:
            meta = inspect_object(obj)
            assert isinstance(obj, dict)  # inspect_object accepts JSON objects only
            invalid = validate_object(obj) if strict else None
            if invalid is not None:
                raise InvalidObject(invalid)
            versions.append(store.version_of(obj, meta))
        except InvalidObject as exc:
            ident = obj.get("id") if isinstance(obj, dict) else None
            # A remote's id is recorded as text of at most 256 characters, without NUL (PostgreSQL refuses it).
            shown = ident[:256].replace("\x00", "\ufffd") if isinstance(ident, str) else None
            rejections.append((shown, str(exc).replace("\x00", "\ufffd")))
    if versions:
        store.lock_collection(session, source.local_collection_id)
        outcome = store.write_versions(session, source.local_collection_id, versions, now_us=_now_us(), added_by=None)
        for version, state in zip(versions, outcome.results, strict=True):
            if state == "conflict":
                rejections.append((version.stix_id, "a different object with this id and version is stored locally"))
        result.stored += outcome.stored
        source.objects_total += outcome.stored
        result.duplicates += outcome.results.count("duplicate")
        feedback.record_synced(session, source.local_collection_id, objects)  # docs/lifecycle.md#feedback
    if rejections:
        # Every run reads the bookmark's timestamp again, so its rejections come back: record each once.
        known: set[tuple[str | None, str]] = set()
        known.update(sources.recorded_rejections(session, source.id, [oid for oid, _ in rejections if oid]))
        new = []
        for rejection in rejections:
            if rejection in known:
                result.duplicates += 1
                continue
            if rejection[0] is not None:
                known.add(rejection)
            new.append(rejection)
        if new:
            sources.add_rejections(session, source.id, new)
        result.rejected += len(new)
        source.rejected_total += len(new)


def _key(obj: object) -> int:
    """What identifies a received version within a run (what "progress" means)."""
    if isinstance(obj, dict):
        return hash((obj.get("id"), obj.get("modified")))
    return hash(repr(obj))


def pull(
    sessions: sessionmaker[Session],
    name: str,
    *,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
    on_page: PageCallback | None = None,
    prefer_wait: int | None = None,
    exact: bool = False,
) -> SyncResult:
    """Pull one source until the remote has nothing more (or ``stop`` is set); commits page by page.

    ``prefer_wait``: ask the server to hold an empty answer that long (``Prefer: wait``, a long poll);
    ``exact``: resume strictly after the bookmark (a server whose ``date_added`` values are unique, as ours):
    the boundary object is not read again, so a caught-up long poll is empty and held."""
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
    remote: RemoteCollection | None = None
    try:
        remote = RemoteCollection(url, secret=resolve_credentials(ref), retry=retry, stop=stop, prefer_wait=prefer_wait)
        _pull_pages(sessions, source_id, remote, bookmark, limit, result, stop, on_page, exact=exact)
    except Interrupted:
        result.outcome = "stopped"
    except (RemoteError, BadRequest) as exc:
        result.outcome, result.error = "error", str(exc)
    finally:
        result.retries = remote.retries if remote is not None else 0
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
    *,
    exact: bool = False,
) -> None:
    added_after = bookmark if exact else _step_back(bookmark)
    next_token: str | None = None
    seen_tokens: set[str] = set()
    seen_objects: set[int] = set()  # versions received since the run (re)started paging
    stalled = empty = restarts = 0
    stateful = False  # the server answers a token with the same token: its paging state lives server-side
    restarted_at: str | None = None
    while not (stop and stop.is_set()):
        retries = remote.retries
        page: RemotePage | None = None
        try:
            page = remote.get_page(added_after=added_after, next_token=next_token, limit=limit)
        except Interrupted:
            raise
        except RemoteError:
            if not (next_token and remote.retries > retries and result.bookmark):
                raise  # else: the lost answer used the token up and the retry was refused (medallion: 400)
        # A failed attempt may have been served before its answer was lost. Where paging state lives on the
        # server (medallion), or the answer carries no new token to show where it is, the page of the retry
        # may lie past one never received: page again from the committed bookmark.
        retried = bool(next_token) and remote.retries > retries and result.bookmark is not None
        if retried and (page is None or stateful or page.next_token in (None, next_token)):
            restarts += 1
            if restarts > MAX_RESTARTS:
                result.outcome, result.error = "error", "paging kept failing; the next run resumes from here"
                return
            if restarted_at == result.bookmark:  # no progress since the last restart: a tie beyond a page
                limit = min(limit * 2, MAX_TIE_LIMIT)
            restarted_at, next_token, added_after = result.bookmark, None, _step_back(result.bookmark)
            seen_tokens.clear()
            seen_objects.clear()
            stalled = empty = 0
            continue
        assert page is not None
        stateful = stateful or (next_token is not None and page.next_token == next_token)
        result.pages += 1
        result.received += len(page.objects)
        keys = {_key(obj) for obj in page.objects}
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
        if not page.more:
            return
        if not page.objects and not page.next_token:
            result.notes.append("the server announced more objects but sent an empty page without next")
            return
        # Progress: objects not yet received in this run. Some servers (medallion) legitimately reuse one
        # `next` token for every page, so a repeated token alone is no loop; repeated objects are. A page
        # emptied by the server's filtering has no objects to judge: there a new token is progress.
        empty = 0 if page.objects else empty + 1
        progressed = fresh or (0 < empty <= MAX_EMPTY_PAGES and page.next_token not in seen_tokens)
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
        bookmark = source.bookmark or ""
        position = int(bookmark) if bookmark.isascii() and bookmark.isdigit() else None
        local_id = source.local_collection_id
    remote: RemoteCollection | None = None
    try:
        remote = RemoteCollection(url, secret=resolve_credentials(ref), retry=retry, stop=stop)
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
    except Interrupted:
        result.outcome = "stopped"
    except (RemoteError, BadRequest) as exc:
        result.outcome, result.error = "error", str(exc)
    finally:
        result.retries = remote.retries if remote is not None else 0
    with session_scope(sessions) as session:
        source = sources.get_source_by_id(session, source_id)
        assert source is not None
        source.last_outcome, source.last_error = result.outcome, result.error
        if result.outcome in ("ok", "stopped"):
            source.last_success_at = datetime.now(UTC)
    return result
