"""The filters of a read, defined once: ``ReadFilter`` renders its SQLAlchemy condition, the hand-written
PostgreSQL SQL of the poll's one statement, and a pure-Python answer (the audit trail's deliveries).

Adding a filter is one field here and its three renderings side by side; ``tests/store/test_read_page_pg``
holds the renderings to the same rows, and read-ahead keys (``store.read_ahead.PollKey``) hold the whole filter.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, true

from indicator_exchange.store.models import ObjectVersion


@dataclass(frozen=True, slots=True)
class Visibility:
    """What the reader may see: TLP levels up to ``clearance``; unmarked objects take ``default_tlp``."""

    clearance: int
    default_tlp: int

    def admits(self, tlp: int | None) -> bool:
        return (self.default_tlp if tlp is None else tlp) <= self.clearance


def _frozen(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


@dataclass(frozen=True, slots=True)
class ReadFilter:
    """The TAXII filters of one read, already parsed; ``None`` means "no filter". Immutable and hashable (lists
    given are kept as tuples).

    ``added_after`` is carried, not rendered: a read starts after the stricter of it and its cursor, passed to
    each rendering as ``after``. ``limit`` (page size, ``None``: unbounded) and ``visibility`` (``None``: not
    decided yet, the reads of ``store`` take it as an argument) are part of what a page depends on, so a key
    made of a ``ReadFilter`` (read-ahead's) can never confuse two reads that differ in either.
    """

    ids: Sequence[str] | None = None
    types: Sequence[str] | None = None
    spec_versions: Sequence[str] | None = None
    # any of "first", "last", "all" and/or exact version timestamps (µs)
    version_keywords: Sequence[str] = ("last",)
    version_values: Sequence[int] = ()
    added_after: int | None = None
    limit: int | None = None
    visibility: Visibility | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", _frozen(self.ids))
        object.__setattr__(self, "types", _frozen(self.types))
        object.__setattr__(self, "spec_versions", _frozen(self.spec_versions))
        object.__setattr__(self, "version_keywords", tuple(self.version_keywords))
        object.__setattr__(self, "version_values", tuple(self.version_values))

    @property
    def all_versions(self) -> bool:
        return "all" in self.version_keywords

    def _seen_by(self, visibility: Visibility | None) -> Visibility:
        chosen = visibility or self.visibility
        if chosen is None:
            raise ValueError("a read needs a visibility: the filter's own or one given")
        return chosen

    # --- SQLAlchemy ------------------------------------------------------------------------------------

    def condition(self, *, after: int | None = None, visibility: Visibility | None = None) -> ColumnElement[bool]:
        """The filter on ``object_version`` rows (the collection is the caller's to add)."""
        seen = self._seen_by(visibility)
        marked_ok = ObjectVersion.tlp <= seen.clearance
        terms: list[ColumnElement[bool]] = [
            or_(ObjectVersion.tlp.is_(None), marked_ok) if seen.default_tlp <= seen.clearance else marked_ok
        ]
        if self.ids is not None:
            terms.append(ObjectVersion.stix_id.in_(self.ids))
        if self.types is not None:
            terms.append(ObjectVersion.stix_type.in_(self.types))
        if self.spec_versions is not None:
            terms.append(ObjectVersion.spec_version.in_(self.spec_versions))
        if not self.all_versions:
            wanted: list[ColumnElement[bool]] = []
            if "last" in self.version_keywords:
                wanted.append(ObjectVersion.is_latest == true())
            if "first" in self.version_keywords:
                wanted.append(ObjectVersion.is_first == true())
            if self.version_values:
                wanted.append(ObjectVersion.version.in_(self.version_values))
            terms.append(or_(*wanted) if wanted else false())
        if after is not None:
            terms.append(ObjectVersion.date_added > after)
        return and_(*terms)

    # --- PostgreSQL, by hand -------------------------------------------------------------------------

    def sql_pg(self, *, after: int | None = None, visibility: Visibility | None = None) -> tuple[str, list[object]]:
        """``condition`` as SQL text and its parameters (psycopg ``%s``), for ``store.pages_pg.read_page_pg``."""
        seen = self._seen_by(visibility)
        where = ["(tlp IS NULL OR tlp <= %s)" if seen.default_tlp <= seen.clearance else "tlp <= %s"]
        params: list[object] = [seen.clearance]
        for column, values in (("stix_id", self.ids), ("stix_type", self.types), ("spec_version", self.spec_versions)):
            if values is not None:
                where.append(f"{column} = ANY(%s)")
                params.append(list(values))
        if not self.all_versions:
            wanted = []
            if "last" in self.version_keywords:
                wanted.append("is_latest")
            if "first" in self.version_keywords:
                wanted.append("is_first")
            if self.version_values:
                wanted.append("version = ANY(%s)")
                params.append(list(self.version_values))
            where.append("(" + " OR ".join(wanted) + ")" if wanted else "false")
        if after is not None:
            where.append("date_added > %s")
            params.append(after)
        return " AND ".join(where), params

    # --- Python ----------------------------------------------------------------------------------------

    def admits(
        self,
        *,
        stix_id: str,
        stix_type: str,
        spec_version: str,
        version: int,
        tlp: int | None,
        date_added: int,
        is_first: bool,
        is_latest: bool,
        after: int | None = None,
        visibility: Visibility | None = None,
    ) -> bool:
        """Whether one stored version passes: the rule ``condition`` renders in SQL, for a version at hand
        (``is_first``/``is_latest`` as they stood when the read ran)."""
        if not self._seen_by(visibility).admits(tlp):
            return False
        if self.ids is not None and stix_id not in self.ids:
            return False
        if self.types is not None and stix_type not in self.types:
            return False
        if self.spec_versions is not None and spec_version not in self.spec_versions:
            return False
        if not self.all_versions and not (
            ("last" in self.version_keywords and is_latest)
            or ("first" in self.version_keywords and is_first)
            or version in self.version_values
        ):
            return False
        return after is None or date_added > after
