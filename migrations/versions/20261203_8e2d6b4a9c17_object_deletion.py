"""object deletions by position

Revision ID: 8e2d6b4a9c17
Revises: 3c7a9e5b1d42
Create Date: 2026-12-03 18:50:00

A TAXII DELETE moves the collection clock but leaves no row behind, so a reader following the collection by
``date_added`` (the matcher applying deltas, ``match/index.py``) could not tell what went. Each delete now
records ``(collection_id, date_added, stix_id)`` at the clock it moved to. A new, empty table: upgrading a
populated database copies nothing; deletions made before the upgrade were already absorbed by the full
rebuild every matcher makes at start.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e2d6b4a9c17"
down_revision: str | None = "3c7a9e5b1d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "object_deletion",
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("date_added", sa.BigInteger(), nullable=False),
        sa.Column("stix_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collection.id"],
            name=op.f("fk_object_deletion_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "date_added", "stix_id", name=op.f("pk_object_deletion")),
    )


def downgrade() -> None:
    op.drop_table("object_deletion")
