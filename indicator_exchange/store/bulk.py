"""Bulk writes and lookups: ``COPY … FROM STDIN`` and ``= ANY(array)`` on PostgreSQL, portable SQL elsewhere.

An ``INSERT`` per row, even pipelined, costs PostgreSQL a parse, plan and execute per row; COPY streams the
rows into the table in one statement inside the same transaction (measured: a request of 1,000 mixed
detections wrote its ~3,000 rows in about a third of the time).

A lookup of 500 ids as ``IN (:p1, …, :p500)`` made psycopg split and bind 500 parameters per statement;
one array parameter costs one.
"""

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Table, any_, bindparam, insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, all column names of ``table``) in the session's transaction."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), list(rows))
        return
    columns = list(rows[0].keys())
    # The column types' own bind processing (e.g. UTCDateTime's naive-datetime check) still applies.
    processors = [(name, table.c[name].type.bind_processor(connection.dialect)) for name in columns]
    column_list = ", ".join(connection.dialect.identifier_preparer.quote(name) for name in columns)
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    with driver_connection.cursor() as cursor, cursor.copy(f"COPY {table.name} ({column_list}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[name] if process is None else process(row[name]) for name, process in processors])


def insert_one(session: Session, table: Table, row: Mapping[str, Any]) -> None:
    """Insert one row; on PostgreSQL straight on the driver connection, for tables written on every request (the
    audit trail): SQLAlchemy's per-statement work cost ten times the insert. Not a prepared statement: the
    engine's connections prepare nothing (``prepare_threshold=None``, ``store.engine.make_engine``)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table).values(**row))
        return
    columns = tuple(row.keys())
    asynchronous = bool(connection.get_execution_options().get("ix_asynchronous_commit", False))
    statement, processors = _insert_statement(table, columns, connection.dialect, asynchronous)
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    driver_connection.execute(
        statement,
        [
            row[name] if process is None else process(row[name])
            for name, process in zip(columns, processors, strict=True)
        ],
    )


@functools.cache
def _insert_statement(
    table: Table, columns: tuple[str, ...], dialect: Dialect, asynchronous: bool = False
) -> tuple[str, list[Any]]:
    """``asynchronous``: the statement turns ``synchronous_commit`` off for its own transaction (behind a
    pooler, where the connection cannot be started with it): evaluated before the commit, in the same trip."""
    quote = dialect.identifier_preparer.quote
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    if asynchronous:
        statement += " RETURNING set_config('synchronous_commit', 'off', true)"
    return statement, processors


def one_of(session: Session, column: InstrumentedAttribute[str], values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN values``: one array parameter on PostgreSQL, an expanded list elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)
