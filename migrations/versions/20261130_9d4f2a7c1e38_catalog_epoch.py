"""catalog epoch

Revision ID: 9d4f2a7c1e38
Revises: 7b1e0c4d2a90
Create Date: 2026-11-30 01:50:00

The auth epoch also moves when an API root or a collection is created, deleted or changed in anything but its
clock (``last_date_added``, which every write moves). Workers then cache the catalog beside the callers, and
a TAXII poll checks both in the same statement that reads its page (``store.objects.read_page_pg``).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9d4f2a7c1e38"
down_revision: str | None = "7b1e0c4d2a90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUMP = "UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1"
_WATCHED = [
    ("api_root", ["INSERT", "UPDATE", "DELETE"]),
    ("collection", ["INSERT", "DELETE", "UPDATE OF id, api_root_id, title, description, alias, default_tlp"]),
]


def _trigger_name(table: str, event: str) -> str:
    return f"bump_auth_epoch_{table}_{event.split()[0].lower()}"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, events in _WATCHED:
        for event in events:
            if postgres:  # bump_auth_epoch() comes from revision 7b1e0c4d2a90
                op.execute(
                    f'CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON "{table}" '
                    "FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_epoch()"
                )
            else:
                op.execute(
                    f'CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON "{table}" BEGIN {_BUMP}; END'
                )
    # Whatever a worker cached before this upgrade must not be trusted after it.
    op.execute(_BUMP)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, events in _WATCHED:
        for event in events:
            op.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(table, event)}" + (f' ON "{table}"' if postgres else ""))
