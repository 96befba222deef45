"""audit request id

Revision ID: 8e2b6d4f9a17
Revises: b7d2e4f1a9c3
Create Date: 2026-12-03 19:00:00

Each audit row carries the request id the server logged and answered in ``X-Request-ID`` (``IX_LOG_FORMAT``),
so a log line, a client's report and an audit row can be joined. Nullable, no default: adding it rewrites
nothing on a populated table, and rows written before it have none. Plain ``ADD COLUMN`` (not a batch copy,
which on SQLite would drop the append-only triggers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e2b6d4f9a17"
down_revision: str | None = "b7d2e4f1a9c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_event", "request_id")
