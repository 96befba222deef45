"""indicator lifecycle: partner feedback and lifecycle events

Revision ID: 8a1d5c3e7f20
Revises: 8e2d6b4a9c17
Create Date: 2026-12-03 18:40:00

Two new tables (docs/lifecycle.md); no existing row changes, so a populated store upgrades in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8a1d5c3e7f20"
down_revision: str | None = "8e2d6b4a9c17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "indicator_feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("indicator_id", sa.String(length=128), nullable=False),
        sa.Column("feedback_id", sa.String(length=128), nullable=False),
        sa.Column("feedback_version", sa.String(length=40), nullable=False),
        sa.Column("feedback_type", sa.String(length=16), nullable=False),
        sa.Column("organisation", sa.String(length=256), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("opinion", sa.String(length=32), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=True),
        sa.Column("principal_id", sa.Uuid(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicator_feedback")),
        sa.UniqueConstraint(
            "indicator_id",
            "feedback_id",
            "feedback_version",
            name=op.f("uq_indicator_feedback_indicator_id_feedback_id_feedback_version"),
        ),
    )
    with op.batch_alter_table("indicator_feedback", schema=None) as batch_op:
        batch_op.create_index("ix_indicator_feedback_indicator", ["indicator_id", "organisation"], unique=False)

    op.create_table(
        "lifecycle_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("indicator_id", sa.String(length=128), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("organisations", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_event")),
    )
    with op.batch_alter_table("lifecycle_event", schema=None) as batch_op:
        batch_op.create_index("ix_lifecycle_event_indicator", ["indicator_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_lifecycle_event_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lifecycle_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lifecycle_event_at"))
        batch_op.drop_index("ix_lifecycle_event_indicator")
    op.drop_table("lifecycle_event")
    with op.batch_alter_table("indicator_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_indicator_feedback_indicator")
    op.drop_table("indicator_feedback")
