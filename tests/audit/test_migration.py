"""The audit-trail revision upgrades, downgrades cleanly (trigger included) and upgrades again."""

import pytest
from sqlalchemy import inspect, text

from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine
from tests.conftest import BACKENDS, _worker, make_test_database
from tests.fixtures.postgres import drop_database

AUDIT_REVISION = "5220dff662df"


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_downgrade_upgrade(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    admin_url = str(request.getfixturevalue("pg_admin_url")) if backend == "postgresql" else ""
    url = make_test_database(admin_url, tmp_path_factory, backend, "auditmigration")
    engine = make_engine(url, pool_size=1)
    try:

        def state() -> tuple[bool, bool, bool]:
            with engine.connect() as conn:
                tables = set(inspect(conn).get_table_names())
                trigger = backend == "postgresql" and bool(
                    conn.execute(
                        text("SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_event_immutable'")
                    ).scalar_one()
                )
            return "audit_event" in tables, "rate_counter" in tables, trigger

        assert state() == (True, True, backend == "postgresql")
        migrate.downgrade(url, f"{AUDIT_REVISION}-1")
        assert state() == (False, False, False)
        migrate.upgrade(url)
        assert state() == (True, True, backend == "postgresql")
        migrate.check(url)
    finally:
        engine.dispose()
        if backend == "postgresql":
            drop_database(admin_url, f"ix_test_auditmigration_{_worker()}")
