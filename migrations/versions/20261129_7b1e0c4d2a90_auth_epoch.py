"""auth epoch

Revision ID: 7b1e0c4d2a90
Revises: 5220dff662df
Create Date: 2026-11-29 23:40:00

One counter that triggers raise whenever something authentication depends on changes (a principal, a
grant, a key's secret, expiry, revocation or owner; deleting any of them), by whatever path: the admin API,
the CLI or plain SQL. Workers cache authenticated callers and re-read them when the counter moves, so a
revocation applies at the next request while an unchanged key costs one tiny query instead of two joins.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b1e0c4d2a90"
down_revision: str | None = "5220dff662df"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUMP = "UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1"
# (table, events): api_key's last_used_at is refreshed by the audit trail and must not move the epoch.
_WATCHED = [
    ("principal", ["INSERT", "UPDATE", "DELETE"]),
    ("grant", ["INSERT", "UPDATE", "DELETE"]),
    ("api_key", ["DELETE", "UPDATE OF secret_hash, expires_at, revoked_at, principal_id"]),
]


def _trigger_name(table: str, event: str) -> str:
    return f"bump_auth_epoch_{table}_{event.split()[0].lower()}"


def upgrade() -> None:
    op.create_table(
        "auth_epoch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_epoch")),
    )
    op.execute("INSERT INTO auth_epoch (id, epoch) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_auth_epoch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{_BUMP}; RETURN NULL; END; $$"
        )
        for table, events in _WATCHED:
            for event in events:
                op.execute(
                    f'CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON "{table}" '
                    "FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch()"
                )
    else:
        for table, events in _WATCHED:
            for event in events:
                op.execute(
                    f'CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON "{table}" BEGIN {_BUMP}; END'
                )


def downgrade() -> None:
    for table, events in _WATCHED:
        for event in events:
            op.execute(
                f"DROP TRIGGER IF EXISTS {_trigger_name(table, event)}"
                + (f' ON "{table}"' if op.get_bind().dialect.name == "postgresql" else "")
            )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION bump_auth_epoch()")
    op.drop_table("auth_epoch")
