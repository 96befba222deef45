"""The fixtures' real programs work before anything is built on them: pg_basebackup makes a replica that
replays the primary's writes, pgbouncer pools in transaction mode. That haproxy takes turns per request is
asserted where the instances are (test_instances.py, paging)."""

from collections.abc import Iterator

import psycopg
import pytest

from tests.fixtures.postgres import Cluster, cluster
from tests.fixtures.scale import PKT_BUF, Replica, pgbouncer, server_host, wait_replayed


@pytest.fixture
def primary() -> Iterator[Cluster]:
    with cluster() as made:
        yield made


def test_a_streaming_replica_replays_the_primary(primary: Cluster) -> None:
    with psycopg.connect(primary.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
    replica = Replica(primary)
    try:
        replica.start()
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("INSERT INTO t VALUES (2)")
        wait_replayed(primary.url, replica.url)
        with psycopg.connect(replica.url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert conn.execute("SELECT sum(n) FROM t").fetchone() == (3,)
    finally:
        replica.remove()


def test_pgbouncer_pools_in_transaction_mode(pg_admin_url: str) -> None:
    port = psycopg.conninfo.conninfo_to_dict(pg_admin_url).get("port") or 5432
    with pgbouncer(int(port)) as pooler:
        config = dict((row[0], row[1]) for row in pooler.show("CONFIG"))
        assert config["pool_mode"] == "transaction"
        with psycopg.connect(pooler.url("postgres"), autocommit=True, prepare_threshold=None) as conn:
            for _ in range(3):
                assert conn.execute("SELECT %s::int", (7,)).fetchone() == (7,)


def test_pgbouncer_reaches_the_server_through_its_socket(primary: Cluster) -> None:
    """Where the server has a unix socket the pooler uses it (the deployment of docs/scaling.md: pgbouncer on the
    database's host), with 64 KiB buffers: the server sees its clients without an address."""
    host = server_host(primary.port, str(primary.workdir))
    assert host == str(primary.workdir)
    assert server_host(primary.port, str(primary.workdir / "data")) == "127.0.0.1"
    with pgbouncer(primary.port, host=host) as pooler:
        config = dict((row[0], row[1]) for row in pooler.show("CONFIG"))
        assert config["pkt_buf"] == str(PKT_BUF)
        with psycopg.connect(pooler.url("postgres"), autocommit=True, prepare_threshold=None) as conn:
            assert conn.execute("SELECT inet_client_addr()").fetchone() == (None,)
    with (  # the test can tell the two apart
        pgbouncer(primary.port, host="127.0.0.1") as pooler,
        psycopg.connect(pooler.url("postgres"), autocommit=True, prepare_threshold=None) as conn,
    ):
        assert conn.execute("SELECT host(inet_client_addr())").fetchone() == ("127.0.0.1",)
