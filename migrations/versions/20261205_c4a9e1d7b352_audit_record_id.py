"""audit record id

Revision ID: c4a9e1d7b352
Revises: 8e2b6d4f9a17
Create Date: 2026-12-05 16:30:00

Each audit row carries the id the worker gave it when the request was answered, so a row whose commit was
acknowledged by nobody (PostgreSQL stopped between committing and answering) and was therefore spooled is not
written a second time when the spool is retried (``audit.writer``). Nullable, no default, no index: adding it
rewrites nothing on a populated table, and the retry looks rows up through the index on ``at``. Plain
``ADD COLUMN`` (not a batch copy, which on SQLite would drop the append-only triggers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4a9e1d7b352"
down_revision: str | None = "8e2b6d4f9a17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("record_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_event", "record_id")
