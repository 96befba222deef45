"""The poll's fast path on PostgreSQL: one hand-written statement on the driver connection for a page, the
collection's clock and the auth epoch (SQLAlchemy's per-statement and per-row work cost more than the query),
and the small statement read-ahead checks a page against. ``read_page_joined`` takes it where the store has
it (``store.engine.features``) and the portable read elsewhere."""

import uuid
from operator import itemgetter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from indicator_exchange.store.engine import features
from indicator_exchange.store.models import Collection
from indicator_exchange.store.pages import CheckedPage, JoinedPage, read_page
from indicator_exchange.store.read_filter import ReadFilter, Visibility


def read_page_joined(
    session: Session,
    collection_id: uuid.UUID,
    filters: ReadFilter,
    visibility: Visibility,
    *,
    after: int | None,
    limit: int,
) -> CheckedPage:
    """``read_page`` with the objects' stored JSON as bytes, plus the clock and epoch it ran under.

    On PostgreSQL this is the hot path of every poll: one hand-written statement on the raw psycopg
    connection (``store.pages_pg.read_page_pg``); SQLAlchemy's per-statement and per-row work cost more than the query.
    """
    if features(session.get_bind()).one_statement_pages:
        connection = session.connection().connection.dbapi_connection
        return read_page_pg(connection, collection_id, filters, visibility, after=after, limit=limit)
    rows, more = read_page(session, collection_id, filters, visibility, after=after, limit=limit)
    clock = session.execute(select(Collection.last_date_added).where(Collection.id == collection_id)).scalar()
    return CheckedPage(
        JoinedPage(
            count=len(rows),
            first_added=rows[0].date_added if rows else None,
            last_added=rows[-1].date_added if rows else None,
            objects=[(row.raw or "").encode() for row in rows],
            more=more,
        ),
        clock=clock,
        epoch=None,
    )


def read_page_pg(
    connection: Any,
    collection_id: uuid.UUID,
    filters: ReadFilter,
    visibility: Visibility,
    *,
    after: int | None,
    limit: int,
) -> CheckedPage:
    """One keyset page, the collection's clock and the auth epoch, from one statement (one snapshot).

    The clock is exactly what existed when the page was read (the audit trail needs it); the epoch lets a
    worker that resolved the caller and the collection from its caches check them in the same round trip.
    """
    where, params = filters.sql_pg(after=after, visibility=visibility)
    statement = (
        "SELECT c.last_date_added, e.epoch, p.date_added, convert_to(p.raw, 'UTF8') FROM collection c "
        "JOIN auth_epoch e ON e.id = 1 "
        "LEFT JOIN LATERAL (SELECT date_added, raw FROM object_version WHERE collection_id = c.id AND "
        + where
        + " ORDER BY date_added LIMIT %s) p ON true WHERE c.id = %s"
    )
    # Binary results with the JSON as bytea: psycopg's C loaders build the rows, and the stored JSON goes into
    # the response as it arrives (no decoding to str and encoding back).
    with connection.cursor(binary=True) as cursor:
        rows = cursor.execute(statement, [*params, limit + 1, collection_id]).fetchall()
    if not rows:
        return CheckedPage(JoinedPage(0, None, None, [], False), clock=None, epoch=None)
    clock, epoch = rows[0][0], rows[0][1]
    if rows[0][2] is None:
        return CheckedPage(JoinedPage(0, None, None, [], False), clock=clock, epoch=epoch)
    # One outer row: the nested loop yields the subquery's order, but SQL does not promise it. Sorting rows
    # that are already in order costs one pass.
    rows.sort(key=itemgetter(2))
    kept = rows[:limit]
    return CheckedPage(
        JoinedPage(
            count=len(kept),
            first_added=kept[0][2],
            last_added=kept[-1][2],
            objects=[row[3] for row in kept],
            more=len(rows) > limit,
        ),
        clock=clock,
        epoch=epoch,
    )


_CLOCK_AND_EPOCH = "SELECT c.last_date_added, e.epoch FROM collection c JOIN auth_epoch e ON e.id = 1 WHERE c.id = %s"


def clock_and_epoch_pg(connection: Any, collection_id: uuid.UUID) -> tuple[int | None, int | None]:
    """The collection's clock and the auth epoch now, in one small statement (read-ahead checks a
    page read earlier against them: ``store.read_ahead``). ``(None, None)``: the collection is gone."""
    row = connection.execute(_CLOCK_AND_EPOCH, [collection_id]).fetchone()
    return (None, None) if row is None else (row[0], row[1])


async def clock_and_epoch_async(connection: Any, collection_id: uuid.UUID) -> tuple[int | None, int | None]:
    """``clock_and_epoch_pg`` on an asyncio connection (``store.engine.LoopConnection``)."""
    cursor = await connection.execute(_CLOCK_AND_EPOCH, [collection_id])
    row = await cursor.fetchone()
    return (None, None) if row is None else (row[0], row[1])
