"""``store.engine.LoopConnection``: the event loop's own connection answers, steps aside when the database is
unreachable (``None``: callers take the threaded path), and reconnects after a failure."""

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from indicator_exchange.store.engine import LoopConnection
from indicator_exchange.store.objects import clock_and_epoch_async, clock_and_epoch_pg
from tests.fixtures.factories import make_collection

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
T = TypeVar("T")


def _run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on an event loop of its own thread: some suites leave a loop running on the main thread."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(lambda: asyncio.run(scenario())).result()


async def _backend_pid(connection: psycopg.AsyncConnection[Any]) -> int:
    cursor = await connection.execute("SELECT pg_backend_pid()")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


def test_it_reads_the_clock_and_epoch_as_the_threaded_path_does(db_url: str, session: Session) -> None:
    collection = make_collection(session)
    session.commit()
    threaded = clock_and_epoch_pg(session.connection().connection.dbapi_connection, collection)

    async def scenario() -> tuple[Any, Any]:
        loop_connection = LoopConnection(db_url)
        try:
            found = await loop_connection.run(lambda c: clock_and_epoch_async(c, collection))
            missing = await loop_connection.run(lambda c: clock_and_epoch_async(c, uuid.uuid4()))
            return found, missing
        finally:
            await loop_connection.close()

    found, missing = _run(scenario)
    assert found == threaded
    assert found[0] is not None
    assert found[1] is not None
    assert missing == (None, None)


def test_a_lost_connection_answers_none_once_then_reconnects(db_url: str, session: Session) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        loop_connection = LoopConnection(db_url)
        try:
            first = await loop_connection.run(_backend_pid)
            session.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
            session.commit()
            lost = await loop_connection.run(_backend_pid)
            again = await loop_connection.run(_backend_pid)
            return first, lost, again
        finally:
            await loop_connection.close()

    first, lost, again = _run(scenario)
    assert lost is None
    assert again is not None
    assert again != first


def test_an_unreachable_database_answers_none(db_url: str) -> None:
    async def scenario() -> Any:
        loop_connection = LoopConnection("postgresql://nobody@127.0.0.1:1/none")
        return await loop_connection.run(_backend_pid)

    assert _run(scenario) is None
