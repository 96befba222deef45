"""live notify

Revision ID: b7d2e4f1a9c3
Revises: 8a1d5c3e7f20
Create Date: 2026-12-03 18:45:00

Live delivery (docs/live.md). PostgreSQL: a trigger sends ``NOTIFY ix_commit, '<collection> <clock>'`` from
the transaction that moves a collection's clock (every write path moves it: TAXII, ingest, sync, delete), and
``NOTIFY ix_auth`` when the auth epoch moves; both are delivered at commit, never for a rolled-back write.
The feed source gets the live follower's status (``sync --follow``): how it follows, since when it is
connected, when it last heard from the partner and the partner's position then. Plain ``ADD COLUMN`` (no batch
copy, which on SQLite would drop the auth-epoch triggers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7d2e4f1a9c3"
down_revision: str | None = "8a1d5c3e7f20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = [
    sa.Column("live_mode", sa.String(length=16), nullable=True),
    sa.Column("live_connected_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("live_seen_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("live_remote_position", sa.String(length=64), nullable=True),
]


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column("feed_source", column)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION ix_notify_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_notify('ix_commit', NEW.id::text || ' ' || NEW.last_date_added::text); RETURN NULL; END; $$"
    )
    op.execute(
        "CREATE TRIGGER ix_notify_commit AFTER UPDATE OF last_date_added ON collection FOR EACH ROW "
        "WHEN (NEW.last_date_added IS DISTINCT FROM OLD.last_date_added) EXECUTE FUNCTION ix_notify_commit()"
    )
    op.execute(
        "CREATE FUNCTION ix_notify_auth() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_notify('ix_auth', NEW.epoch::text); RETURN NULL; END; $$"
    )
    op.execute(
        "CREATE TRIGGER ix_notify_auth AFTER UPDATE ON auth_epoch FOR EACH ROW EXECUTE FUNCTION ix_notify_auth()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ix_notify_auth ON auth_epoch")
        op.execute("DROP FUNCTION IF EXISTS ix_notify_auth()")
        op.execute("DROP TRIGGER IF EXISTS ix_notify_commit ON collection")
        op.execute("DROP FUNCTION IF EXISTS ix_notify_commit()")
    for column in reversed(_COLUMNS):
        op.drop_column("feed_source", column.name)
