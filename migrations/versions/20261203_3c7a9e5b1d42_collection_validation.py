"""collection validation policy

Revision ID: 3c7a9e5b1d42
Revises: 4c8e1f2b7a55
Create Date: 2026-12-03 10:40:00

Each collection says how incoming STIX is checked (``docs/validation.md``): ``strict`` (the default: STIX 2.1
validation, patterns parsed) or ``basic`` (the common properties only, for operators who must store what they
receive). Plain ``ADD``/``DROP COLUMN`` rather than a batch copy: on SQLite a batch recreates the table and
would drop its auth-epoch triggers (revision 9d4f2a7c1e38).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c7a9e5b1d42"
down_revision: str | None = "4c8e1f2b7a55"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("collection", sa.Column("validation", sa.String(length=8), server_default="strict", nullable=False))


def downgrade() -> None:
    op.drop_column("collection", "validation")
