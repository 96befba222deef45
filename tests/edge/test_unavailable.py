"""One classification of "the database is unavailable" (``store.engine.database_unavailable``), and the 503
it becomes: real psycopg and SQLAlchemy errors where a server can produce them, the SQLSTATE kinds a
restart produces otherwise."""

import socket
import sqlite3

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from indicator_exchange.store.engine import database_unavailable, make_engine


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestRealErrors:
    def test_connection_refused(self) -> None:
        with pytest.raises(psycopg.OperationalError) as raised:
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres", connect_timeout=2)
        assert database_unavailable(raised.value)

    def test_connection_refused_through_sqlalchemy(self) -> None:
        engine = make_engine(f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres")
        with pytest.raises(sa_exc.OperationalError) as raised, engine.connect():
            pass
        engine.dispose()
        assert database_unavailable(raised.value)

    def test_admin_shutdown_of_a_pooled_connection(self, pg_url: str) -> None:
        engine = make_engine(pg_url, pool_size=1)
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(sa_exc.DBAPIError) as raised, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        assert database_unavailable(raised.value)

    def test_pool_exhausted(self, pg_url: str) -> None:
        engine = create_engine(
            pg_url.replace("postgresql://", "postgresql+psycopg://"), pool_size=1, max_overflow=0, pool_timeout=0.1
        )
        with engine.connect(), pytest.raises(sa_exc.TimeoutError) as raised, engine.connect():
            pass
        engine.dispose()
        assert database_unavailable(raised.value)

    def test_a_closed_psycopg_connection(self, pg_url: str) -> None:
        conn = psycopg.connect(pg_url)
        conn.close()
        with pytest.raises(psycopg.OperationalError) as raised:
            conn.execute("SELECT 1")
        assert database_unavailable(raised.value)


@pytest.mark.parametrize(
    "error",
    [
        pg_errors.AdminShutdown("terminating connection due to administrator command"),
        pg_errors.CrashShutdown("terminating connection because of crash of another server process"),
        pg_errors.CannotConnectNow("the database system is starting up"),
        pg_errors.CannotConnectNow("the database system is shutting down"),
        pg_errors.ConnectionFailure("connection failure"),
        pg_errors.ConnectionException("connection exception"),
        pg_errors.TooManyConnections("sorry, too many clients already"),
        pg_errors.IdleSessionTimeout("terminating connection due to idle-session timeout"),
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        psycopg.InterfaceError("the connection is closed"),
    ],
    ids=lambda error: type(error).__name__ + ":" + str(error)[:30],
)
def test_unavailable_kinds(error: psycopg.Error) -> None:
    assert database_unavailable(error)
    wrapped = sa_exc.OperationalError("SELECT 1", {}, error)
    assert database_unavailable(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        pg_errors.UniqueViolation("duplicate key value violates unique constraint"),
        pg_errors.ProgramLimitExceeded("total size of jsonb array elements exceeds the maximum"),
        pg_errors.SyntaxError("syntax error at or near"),
        pg_errors.QueryCanceled("canceling statement due to statement timeout"),
        pg_errors.DataException("invalid input syntax"),
        pg_errors.SerializationFailure("could not serialize access"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_faults_of_the_request_or_the_code_are_not_unavailability(error: psycopg.Error) -> None:
    assert not database_unavailable(error)
    assert not database_unavailable(sa_exc.DBAPIError("SELECT 1", {}, error))


def test_sqlite_busy_is_unavailable_other_sqlite_errors_are_not() -> None:
    assert database_unavailable(sqlite3.OperationalError("database is locked"))
    assert not database_unavailable(sqlite3.OperationalError("no such table: x"))


def test_errors_outside_the_database_are_not_unavailability() -> None:
    assert not database_unavailable(ValueError("bad"))
    assert not database_unavailable(ConnectionResetError("a client went away"))
