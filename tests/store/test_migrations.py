"""Alembic owns the schema: every revision upgrades and downgrades on both backends, the models and the
migrations agree (`alembic check`), and `serve` refuses a database that is not at head."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

from indicator_exchange.stix.markings import TLP2_MARKING_IDS, Tlp
from indicator_exchange.store import migrate
from indicator_exchange.store.engine import make_engine
from indicator_exchange.store.models import Base, UTCDateTime
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


_root = sa.table(
    "api_root",
    sa.column("id", sa.Uuid),
    sa.column("name", sa.String),
    sa.column("title", sa.String),
    sa.column("created_at", UTCDateTime),
)
_collection = sa.table(
    "collection",
    sa.column("id", sa.Uuid),
    sa.column("api_root_id", sa.Uuid),
    sa.column("title", sa.String),
    sa.column("default_tlp", sa.SmallInteger),
    sa.column("last_date_added", sa.BigInteger),
    sa.column("created_at", UTCDateTime),
)
_version = sa.table(
    "object_version",
    sa.column("collection_id", sa.Uuid),
    *(
        sa.column(name)
        for name in (
            "stix_id",
            "stix_type",
            "spec_version",
            "version",
            "date_added",
            "is_latest",
            "is_first",
            "tlp",
            "revoked",
            "raw",
        )
    ),
)


class TestTlpDefinitionsClear:
    """Revision 4c8e1f2b7a55 re-files stored TLP marking-definitions under TLP:CLEAR, and only them."""

    def test_upgrade_files_them_clear_and_downgrade_puts_them_back(self, empty_url: str) -> None:
        migrate.upgrade(empty_url, "9d4f2a7c1e38")
        engine = make_engine(empty_url)
        root, collection = uuid.uuid4(), uuid.uuid4()
        rows = [
            (TLP2_MARKING_IDS[Tlp.GREEN], "marking-definition", None),
            ("marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", "marking-definition", None),  # TLP 1.0
            ("marking-definition--0b2c6f9e-7a4d-4f1e-9c3b-5d8a2e6f1c70", "marking-definition", None),  # a statement
            ("identity--b3d6a1f0-5c1e-4e0a-9d1f-0c2f4a6b8e21", "identity", None),
        ]
        try:
            with engine.begin() as conn:
                now = datetime.now(UTC)
                conn.execute(_root.insert().values(id=root, name="r", title="r", created_at=now))
                conn.execute(
                    _collection.insert().values(
                        id=collection,
                        api_root_id=root,
                        title="c",
                        default_tlp=2,
                        last_date_added=len(rows),
                        created_at=now,
                    )
                )
                for n, (stix_id, stix_type, tlp) in enumerate(rows, start=1):
                    conn.execute(
                        _version.insert().values(
                            collection_id=collection,
                            stix_id=stix_id,
                            stix_type=stix_type,
                            spec_version="2.1",
                            version=n,
                            date_added=n,
                            is_latest=True,
                            is_first=True,
                            tlp=tlp,
                            revoked=False,
                            raw="{}",
                        )
                    )

            def filed() -> list[int | None]:
                with engine.connect() as conn:
                    found = dict(conn.execute(sa.select(_version.c.stix_id, _version.c.tlp)).all())
                return [found[stix_id] for stix_id, _, _ in rows]

            migrate.upgrade(empty_url, "4c8e1f2b7a55")
            assert filed() == [int(Tlp.CLEAR), int(Tlp.CLEAR), None, None]
            migrate.downgrade(empty_url, "9d4f2a7c1e38")
            assert filed() == [None, None, None, None]
        finally:
            engine.dispose()
