"""Streaming exports of a collection slice: a STIX 2.1 bundle, JSON lines or flat CSV rows.

Memory stays flat whatever the collection's size: rows are read in keyset pages (``store.objects.read_page``,
the TAXII read path, TLP clearance applied in SQL) and each page is written out before the next is read. The
stored JSON of each object is copied as it is, never re-serialised.
"""

import csv
import io
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy.orm import Session

from indicator_exchange.errors import BadRequest, NotFound, NotPermitted
from indicator_exchange.reports import kinds
from indicator_exchange.stix.markings import TLP2_MARKING_IDS, Tlp, tlp2_marking_definitions, tlp_of
from indicator_exchange.stix.objects import InvalidObject, format_timestamp_us, parse_timestamp_us
from indicator_exchange.store import catalog, principals
from indicator_exchange.store import objects as store
from indicator_exchange.store import reports as report_store
from indicator_exchange.store.models import Collection

FORMATS = ("stix", "csv", "jsonl")
MEDIA_TYPES = {
    "stix": "application/stix+json;version=2.1",
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
}
EXTENSIONS = {"stix": "json", "csv": "csv", "jsonl": "jsonl"}
CSV_COLUMNS = (
    "date_added",
    "id",
    "type",
    "spec_version",
    "version",
    "created",
    "tlp",
    "created_by_ref",
    "revoked",
    "name",
    "kind",
    "pattern",
    "indicator_types",
    "labels",
    "valid_from",
    "valid_until",
    "confidence",
)
DEFAULT_PAGE_SIZE = 1000
_TLP2_IDS = frozenset(TLP2_MARKING_IDS.values())


@dataclass(frozen=True, slots=True)
class ExportRequest:
    collection: Collection
    clearance: int
    since_us: int | None = None
    types: Sequence[str] | None = None
    all_versions: bool = False
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def filters(self) -> store.ReadFilter:
        return store.ReadFilter(types=self.types, version_keywords=("all",) if self.all_versions else ("last",))

    @property
    def visibility(self) -> store.Visibility:
        return store.Visibility(clearance=self.clearance, default_tlp=self.collection.default_tlp)


@dataclass(slots=True)
class ExportStats:
    """Filled in while the export streams: what was written, and the last position (for resuming)."""

    objects: int = 0
    bytes: int = 0
    pages: int = 0
    last_date_added: int | None = None


resolve_collection = catalog.resolve_collection  # the one resolver of collection ids and aliases


def clearance_of_principal(session: Session, name: str, collection: Collection) -> int:
    """The clearance to export ``collection`` as principal ``name``, who must be able to read it."""
    principal = principals.get_principal(session, name)
    if principal is None:
        raise NotFound(f"there is no principal {name!r}")
    if not principal.is_active:
        raise NotPermitted(f"principal {name!r} is not active")
    if principal.kind != "admin":
        grant = principals.get_grant(session, principal.id, collection.id)
        if grant is None or not grant.can_read:
            raise NotPermitted(f"principal {name!r} has no read grant on collection {collection.id}")
    return principal.clearance


def parse_since(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    if len(value) == 10:
        value += "T00:00:00Z"
    try:
        return parse_timestamp_us(value.replace("+00:00", "Z"), name="since")
    except InvalidObject as exc:
        raise BadRequest(str(exc)) from None


def parse_types(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    types = [t.strip() for value in values for t in value.split(",") if t.strip()]
    return types or None


def counts(session: Session, request: ExportRequest) -> tuple[int, int]:
    """(objects the export will write, objects it withholds as above the clearance)."""
    args = (session, request.collection.id, request.filters)
    total = report_store.count_versions(*args, request.visibility, after=request.since_us)
    everything = report_store.count_versions(
        *args,
        store.Visibility(clearance=int(Tlp.RED), default_tlp=request.collection.default_tlp),
        after=request.since_us,
    )
    return total, everything - total


# Where an export goes on when its session fails mid-stream (a read replica that stopped): another session to
# read the remaining pages from, or None to let the error end the export.
Fallback = Callable[[BaseException], Session | None]


def _pages(
    session: Session, request: ExportRequest, stats: ExportStats, fallback: Fallback | None = None
) -> Iterator[list[store.ObjectRow]]:
    after = request.since_us
    while True:
        try:
            rows, more = store.read_page(
                session,
                request.collection.id,
                request.filters,
                request.visibility,
                after=after,
                limit=request.page_size,
            )
        except Exception as exc:
            replacement = None if fallback is None else fallback(exc)
            if replacement is None:
                raise
            session = replacement  # keyset pages: the next one from the same position, nothing lost or repeated
            continue
        if rows:
            after = rows[-1].date_added
            stats.pages += 1
            stats.last_date_added = after
            yield rows
        if not more:
            return


def stream(
    session: Session,
    request: ExportRequest,
    fmt: str,
    stats: ExportStats | None = None,
    on_page: Callable[[ExportStats], None] | None = None,
    fallback: Fallback | None = None,
) -> Iterator[bytes]:
    """The export as chunks of bytes, one (or a few) per page; ``stats`` is updated as it goes. ``fallback``:
    where the remaining pages are read when ``session`` fails (``Fallback``)."""
    if fmt not in FORMATS:
        raise BadRequest(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    stats = stats if stats is not None else ExportStats()
    writers = {"stix": _bundle, "jsonl": _jsonl, "csv": _csv}
    for chunk in writers[fmt](session, request, stats, on_page, fallback):
        stats.bytes += len(chunk)
        yield chunk


def _bundle(
    session: Session,
    request: ExportRequest,
    stats: ExportStats,
    on_page: Callable[[ExportStats], None] | None,
    fallback: Fallback | None = None,
) -> Iterator[bytes]:
    # The TLP 2.0 marking definitions go first so the bundle is self-contained; stored copies are skipped.
    # ``stats.objects`` counts what the bundle holds: those definitions, and the stored objects written.
    head = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}"}
    yield orjson.dumps(head)[:-1] + b',"objects":['
    definitions = tlp2_marking_definitions()
    yield b",\n".join(orjson.dumps(m, option=orjson.OPT_SORT_KEYS) for m in definitions)
    stats.objects += len(definitions)
    for rows in _pages(session, request, stats, fallback):
        kept = [row.raw or "" for row in rows if row.stix_id not in _TLP2_IDS]
        stats.objects += len(kept)
        if kept:
            yield (",\n" + ",\n".join(kept)).encode()
        if on_page:
            on_page(stats)
    yield b"]}\n"


def _jsonl(
    session: Session,
    request: ExportRequest,
    stats: ExportStats,
    on_page: Callable[[ExportStats], None] | None,
    fallback: Fallback | None = None,
) -> Iterator[bytes]:
    for rows in _pages(session, request, stats, fallback):
        stats.objects += len(rows)
        yield ("\n".join(row.raw or "" for row in rows) + "\n").encode()
        if on_page:
            on_page(stats)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def csv_row(date_added: int, obj: dict[str, object], default_tlp: int) -> list[str]:
    """One flat CSV row of one stored object."""
    level = tlp_of(obj)
    tlp = Tlp(default_tlp if level is None else level).label
    kind = kinds.kind_of_pattern(obj.get("pattern")) if obj.get("type") == "indicator" else ""
    return [
        format_timestamp_us(date_added),
        _text(obj.get("id")),
        _text(obj.get("type")),
        _text(obj.get("spec_version")),
        _text(obj.get("modified") or obj.get("created")),
        _text(obj.get("created")),
        tlp,
        _text(obj.get("created_by_ref")),
        _text(obj.get("revoked") is True),
        _text(obj.get("name")),
        kind,
        _text(obj.get("pattern")),
        _text(obj.get("indicator_types")),
        _text(obj.get("labels")),
        _text(obj.get("valid_from")),
        _text(obj.get("valid_until")),
        _text(obj.get("confidence")),
    ]


def _csv(
    session: Session,
    request: ExportRequest,
    stats: ExportStats,
    on_page: Callable[[ExportStats], None] | None,
    fallback: Fallback | None = None,
) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    for rows in _pages(session, request, stats, fallback):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            try:
                obj = orjson.loads(row.raw or "{}")
            except orjson.JSONDecodeError:
                obj = {"id": row.stix_id}
            writer.writerow(
                csv_row(row.date_added, obj if isinstance(obj, dict) else {}, request.collection.default_tlp)
            )
        stats.objects += len(rows)
        yield buffer.getvalue().encode()
        if on_page:
            on_page(stats)


def filename(collection: Collection, fmt: str) -> str:
    return f"collection-{collection.id}.{EXTENSIONS[fmt]}"
