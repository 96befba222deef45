"""detection provenance and ingest refusals

Revision ID: e53cd5a1799a
Revises: 5d3bb3bf014f
Create Date: 2026-11-23 23:22:57.418281
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e53cd5a1799a"
down_revision: str | None = "5d3bb3bf014f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_refusal",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal_id", sa.Uuid(), nullable=True),
        sa.Column("collection_id", sa.Uuid(), nullable=True),
        sa.Column("detector", sa.String(length=128), nullable=True),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("field", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_refusal")),
    )
    with op.batch_alter_table("ingest_refusal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_refusal_at"), ["at"], unique=False)

    op.create_table(
        "detection_record",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("indicator_id", sa.String(length=128), nullable=False),
        sa.Column("principal_id", sa.Uuid(), nullable=True),
        sa.Column("detector", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("cluster", sa.String(length=128), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confidence", sa.SmallInteger(), nullable=False),
        sa.Column("accounts_linked", sa.Integer(), nullable=True),
        sa.Column("requests", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collection.id"],
            name=op.f("fk_detection_record_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_record")),
    )
    with op.batch_alter_table("detection_record", schema=None) as batch_op:
        batch_op.create_index("ix_detection_record_indicator", ["collection_id", "indicator_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_detection_record_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("detection_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_detection_record_received_at"))
        batch_op.drop_index("ix_detection_record_indicator")

    op.drop_table("detection_record")
    with op.batch_alter_table("ingest_refusal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_refusal_at"))

    op.drop_table("ingest_refusal")
