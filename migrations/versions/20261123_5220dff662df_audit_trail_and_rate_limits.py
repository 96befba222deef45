"""audit trail and rate limits

Revision ID: 5220dff662df
Revises: e53cd5a1799a
Create Date: 2026-11-23 23:39:21.706351

``audit_event`` is append-only: on PostgreSQL a trigger refuses UPDATE and DELETE of its rows (TRUNCATE,
used by the tests' cleanup and by an operator's deliberate purge, is not a row operation and stays possible).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5220dff662df"
down_revision: str | None = "e53cd5a1799a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IMMUTABLE_FUNCTION = """
CREATE FUNCTION audit_event_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event rows are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
_IMMUTABLE_TRIGGER = """
CREATE TRIGGER audit_event_immutable BEFORE UPDATE OR DELETE ON audit_event
FOR EACH ROW EXECUTE FUNCTION audit_event_immutable()
"""


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal_id", sa.Uuid(), nullable=True),
        sa.Column("principal_name", sa.String(length=128), nullable=True),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("client_addr", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("route", sa.String(length=256), nullable=True),
        sa.Column("api_root", sa.String(length=64), nullable=True),
        sa.Column("collection_id", sa.Uuid(), nullable=True),
        sa.Column("object_id", sa.String(length=256), nullable=True),
        sa.Column(
            "filters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("object_count", sa.Integer(), nullable=True),
        sa.Column("date_added_first", sa.BigInteger(), nullable=True),
        sa.Column("date_added_last", sa.BigInteger(), nullable=True),
        sa.Column("clearance", sa.SmallInteger(), nullable=True),
        sa.Column("default_tlp", sa.SmallInteger(), nullable=True),
        sa.Column("collection_clock", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_at"), ["at"], unique=False)
        batch_op.create_index(
            "ix_audit_event_delivery", ["collection_id", "principal_id", "date_added_last"], unique=False
        )
        batch_op.create_index("ix_audit_event_principal_at", ["principal_id", "at"], unique=False)

    op.create_table(
        "rate_counter",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("window_no", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("previous_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "scope", name=op.f("pk_rate_counter")),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_IMMUTABLE_FUNCTION)
        op.execute(_IMMUTABLE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_immutable ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_immutable()")

    op.drop_table("rate_counter")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_principal_at")
        batch_op.drop_index("ix_audit_event_delivery")
        batch_op.drop_index(batch_op.f("ix_audit_event_at"))

    op.drop_table("audit_event")
