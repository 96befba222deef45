"""Alembic owns the schema: every revision upgrades and downgrades on both backends, the models and the
migrations agree (`alembic check`), and `serve` refuses a database that is not at head."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine
from indicator_exchange.store.models import Base
from tests.fixtures.postgres import drop_database, fresh_database

IX = str(Path(sys.executable).parent / "indicator-exchange")


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    admin = str(request.getfixturevalue("pg_admin_url"))
    name = f"ix_test_migrations_{uuid.uuid4().hex[:8]}"
    yield fresh_database(admin, name)
    drop_database(admin, name)


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


class TestMigrations:
    def test_upgrade_downgrade_upgrade_round_trips(self, empty_url: str) -> None:
        migrate.upgrade(empty_url)
        assert tables(empty_url) == set(Base.metadata.tables)
        migrate.check(empty_url)
        migrate.downgrade(empty_url, "base")
        assert tables(empty_url) == set()
        migrate.upgrade(empty_url)
        assert tables(empty_url) == set(Base.metadata.tables)

    def test_each_revision_steps_down_and_up(self, empty_url: str) -> None:
        migrate.upgrade(empty_url)
        head = migrate.head_revision()
        engine = make_engine(empty_url)
        try:
            while migrate.current_revision(engine) is not None:
                migrate.downgrade(empty_url, "-1")
        finally:
            engine.dispose()
        migrate.upgrade(empty_url)
        engine = make_engine(empty_url)
        try:
            assert migrate.current_revision(engine) == head
        finally:
            engine.dispose()

    def test_serve_refuses_an_unmigrated_database(self, tmp_path: Path) -> None:
        env = dict(os.environ, IX_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
        done = subprocess.run([IX, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "indicator-exchange db upgrade" in done.stderr
