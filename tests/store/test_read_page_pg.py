"""The hand-written PostgreSQL page statement (``store.pages_pg.read_page_pg``) and the pure-Python answer
(``ReadFilter.admits``) agree with the SQLAlchemy one."""

import itertools
import uuid

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from indicator_exchange.store import objects as store
from indicator_exchange.store.principals import auth_epoch
from tests.fixtures.factories import make_collection, make_indicator

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

_LEVELS = [None, 0, 1, 2, 3]  # TLP 2.0 levels as stored (None: unmarked)


def _load(session: Session) -> tuple[uuid.UUID, list[store.NewVersion]]:
    collection = make_collection(session)
    versions = []
    for n in range(40):
        for step in range(n % 3 + 1):  # 1 to 3 versions
            obj = make_indicator(n, modified=f"2026-03-0{step + 1}T00:00:00.000Z")
            level = _LEVELS[n % len(_LEVELS)]
            obj["spec_version"] = "2.1"
            versions.append(
                store.NewVersion(
                    stix_id=str(obj["id"]),
                    stix_type="indicator" if n % 4 else "x-thing",
                    spec_version="2.1",
                    version=1_700_000_000_000_000 + step,
                    modified=str(obj["modified"]),
                    tlp=level,
                    created_by_ref=None,
                    revoked=False,
                    raw=orjson.dumps(obj).decode(),
                )
            )
    store.write_versions(session, collection, versions, now_us=1_800_000_000_000_000, added_by=None)
    session.commit()
    return collection, versions


def _filters(versions: list[store.NewVersion]) -> list[store.ReadFilter]:
    some_ids = sorted({v.stix_id for v in versions})[::7]
    return [
        store.ReadFilter(ids=ids, types=types, version_keywords=keywords, version_values=values, spec_versions=specs)
        for ids, types, keywords, values, specs in itertools.product(
            [None, some_ids],
            [None, ["x-thing"]],
            [("last",), ("first",), ("all",), ("first", "last"), ()],
            [(), (1_700_000_000_000_001,)],
            [None, ["2.1"], ["2.0"]],
        )
    ]


def test_every_filter_and_visibility_reads_the_same_rows(session: Session) -> None:
    collection, versions = _load(session)
    connection = session.connection().connection.dbapi_connection
    compared = 0
    for filters in _filters(versions):
        for clearance, default_tlp in itertools.product(range(4), range(4)):
            visibility = store.Visibility(clearance=clearance, default_tlp=default_tlp)
            for after, limit in ((None, 1000), (None, 7), (None, 1)):
                rows, more = store.read_page(session, collection, filters, visibility, after=after, limit=limit)
                checked = store.read_page_pg(connection, collection, filters, visibility, after=after, limit=limit)
                page = checked.page
                assert page.count == len(rows)
                assert page.more == more
                assert page.objects == [(row.raw or "").encode() for row in rows]
                assert (page.first_added, page.last_added) == (
                    (rows[0].date_added, rows[-1].date_added) if rows else (None, None)
                )
                if rows:  # the next page starts strictly after this one
                    later, _ = store.read_page(
                        session, collection, filters, visibility, after=rows[-1].date_added, limit=limit
                    )
                    later_pg = store.read_page_pg(
                        connection, collection, filters, visibility, after=rows[-1].date_added, limit=limit
                    )
                    assert later_pg.page.count == len(later)
                compared += 1
    assert compared > 1000


def test_the_page_comes_with_the_clock_and_epoch_of_its_own_snapshot(session: Session) -> None:
    collection, _ = _load(session)
    connection = session.connection().connection.dbapi_connection
    everything = store.ReadFilter(version_keywords=("all",))
    checked = store.read_page_pg(connection, collection, everything, store.Visibility(3, 0), after=None, limit=10)
    clock = session.execute(text("SELECT last_date_added FROM collection WHERE id = :c"), {"c": collection}).scalar()
    assert checked.clock == clock
    assert checked.clock is not None
    assert checked.clock >= (checked.page.last_added or 0)
    assert checked.epoch == auth_epoch(session)


def test_a_missing_collection_reads_nothing(session: Session) -> None:
    connection = session.connection().connection.dbapi_connection
    checked = store.read_page_pg(
        connection, uuid.uuid4(), store.ReadFilter(), store.Visibility(3, 0), after=None, limit=10
    )
    assert checked.clock is None
    assert checked.page.count == 0
    assert not checked.page.more


def test_the_python_answer_of_a_filter_agrees_with_its_sql(session: Session) -> None:
    """``ReadFilter.admits`` (the audit trail's deliveries) passes exactly the rows its SQL condition reads."""
    collection, versions = _load(session)
    stored = session.execute(
        text(
            "SELECT stix_id, stix_type, spec_version, version, tlp, date_added, is_first, is_latest "
            "FROM object_version WHERE collection_id = :c ORDER BY date_added"
        ),
        {"c": collection},
    ).all()
    compared = 0
    for filters in _filters(versions):
        for clearance, default_tlp in itertools.product(range(4), range(4)):
            visibility = store.Visibility(clearance=clearance, default_tlp=default_tlp)
            for after in (None, stored[len(stored) // 2].date_added):
                rows, _ = store.read_page(session, collection, filters, visibility, after=after, limit=10_000)
                admitted = [
                    row.date_added
                    for row in stored
                    if filters.admits(
                        stix_id=row.stix_id,
                        stix_type=row.stix_type,
                        spec_version=row.spec_version,
                        version=row.version,
                        tlp=row.tlp,
                        date_added=row.date_added,
                        is_first=row.is_first,
                        is_latest=row.is_latest,
                        after=after,
                        visibility=visibility,
                    )
                ]
                assert admitted == [row.date_added for row in rows]
                compared += 1
    assert compared > 1000
