"""Rate-limit counters: one upsert per request, shared by every worker through the database."""

from dataclasses import dataclass

from sqlalchemy import and_, case, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from indicator_exchange.store.models import RateCounter


@dataclass(frozen=True, slots=True)
class WindowCount:
    """The counter after an update: this window's count and the previous window's."""

    window_no: int
    count: int
    previous_count: int


def bump(session: Session, *, key_id: str, scope: str, window_no: int, amount: int = 1) -> WindowCount:
    """Add ``amount`` to the key's counter for window ``window_no`` and return the counts, in one statement.

    ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` on both PostgreSQL and SQLite. A counter still in an older
    window moves to this one (keeping the count of the window just before it for a sliding estimate); a
    counter already ahead (a worker with a faster clock) keeps its window and just counts.
    """
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    current = RateCounter.window_no
    statement = (
        insert(RateCounter)
        .values(key_id=key_id, scope=scope, window_no=window_no, count=amount, previous_count=0)
        .on_conflict_do_update(
            index_elements=[RateCounter.key_id, RateCounter.scope],
            set_={
                "previous_count": case(
                    (current >= window_no, RateCounter.previous_count),
                    (current == window_no - 1, RateCounter.count),
                    else_=0,
                ),
                "count": case((current >= window_no, RateCounter.count + amount), else_=amount),
                "window_no": case((current > window_no, current), else_=window_no),
            },
        )
        .returning(RateCounter.window_no, RateCounter.count, RateCounter.previous_count)
    )
    row = session.execute(statement).one()
    return WindowCount(window_no=int(row[0]), count=int(row[1]), previous_count=int(row[2]))


def peek(session: Session, *, key_id: str, scope: str, window_no: int) -> int:
    """The key's count in window ``window_no`` (0 if it has none there)."""
    count = session.execute(
        select(RateCounter.count).where(
            RateCounter.key_id == key_id, RateCounter.scope == scope, RateCounter.window_no == window_no
        )
    ).scalar_one_or_none()
    return int(count or 0)


def read_many(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], WindowCount]:
    """The counters of ``(key_id, scope)`` pairs that exist, in one statement."""
    if not keys:
        return {}
    condition = or_(*(and_(RateCounter.key_id == key_id, RateCounter.scope == scope) for key_id, scope in keys))
    columns = (RateCounter.key_id, RateCounter.scope, RateCounter.window_no, RateCounter.count)
    rows = session.execute(select(*columns, RateCounter.previous_count).where(condition))
    return {(r[0], r[1]): WindowCount(window_no=int(r[2]), count=int(r[3]), previous_count=int(r[4])) for r in rows}
