"""feed sources

Revision ID: 5d3bb3bf014f
Revises: cea40321e7eb
Create Date: 2026-11-23 23:17:42.555874
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d3bb3bf014f"
down_revision: str | None = "cea40321e7eb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_source",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("collection_url", sa.Text(), nullable=False),
        sa.Column("credentials_ref", sa.String(length=512), nullable=True),
        sa.Column("local_collection_id", sa.Uuid(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("page_size", sa.Integer(), nullable=False),
        sa.Column("max_tlp", sa.SmallInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("bookmark", sa.String(length=64), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("objects_total", sa.BigInteger(), nullable=False),
        sa.Column("rejected_total", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["local_collection_id"],
            ["collection.id"],
            name=op.f("fk_feed_source_local_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_source")),
        sa.UniqueConstraint("name", name=op.f("uq_feed_source_name")),
    )
    op.create_table(
        "sync_rejection",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("object_id", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["feed_source.id"], name=op.f("fk_sync_rejection_source_id_feed_source"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_rejection")),
    )
    with op.batch_alter_table("sync_rejection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_rejection_source_id"), ["source_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sync_rejection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_rejection_source_id"))

    op.drop_table("sync_rejection")
    op.drop_table("feed_source")
