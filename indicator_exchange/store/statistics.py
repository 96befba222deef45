"""Planner statistics on PostgreSQL when autovacuum does not keep them.

Without statistics PostgreSQL plans every query as if the tables were nearly empty: a 1,000-row keyset page
became a bitmap scan of the whole collection plus a sort (465 ms a page at 1,000,000 objects, measured), and
ingest's id lookups scanned every current object. Autovacuum normally runs ``ANALYZE`` after 10% of a table
changes; where it is switched off (as on some managed and test servers) the service does the same itself:
``analyze_stale`` after a migration and after large loads, and a background thread while the server runs.
"""

import logging
import threading

from sqlalchemy import Connection, Engine, text

from indicator_exchange.store.engine import database_unavailable
from indicator_exchange.store.models import Base

log = logging.getLogger(__name__)

STALE_FRACTION = 0.1
STALE_MINIMUM = 500
_LOCK_KEY = 0x1E_57A7  # one analyser at a time across workers (pg_try_advisory_lock)


def autovacuum_enabled(engine: Engine) -> bool:
    with engine.connect() as connection:
        return str(connection.execute(text("SELECT current_setting('autovacuum')")).scalar_one()) == "on"


def stale_tables(connection: Connection) -> list[str]:
    """Our tables changed by more than 10% (and 500 rows) since their last ANALYZE, or never analysed."""
    ours = sorted(Base.metadata.tables)
    query = text(
        "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:names) AND n_mod_since_analyze > "
        ":minimum + :fraction * GREATEST(n_live_tup - n_mod_since_analyze, 0)"
    )
    rows = connection.execute(query, {"names": ours, "minimum": STALE_MINIMUM, "fraction": STALE_FRACTION})
    return [str(name) for (name,) in rows]


def analyze_stale(engine: Engine, *, force: bool = False) -> list[str]:
    """ANALYZE the stale tables (all of ours with ``force``); returns their names. A no-op off PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return []
    # One transaction and a transaction-level lock: behind a transaction-mode pooler (PgBouncer) a session lock
    # and its unlock may run on two different server connections, leaving the lock held for ever.
    with engine.begin() as connection:
        if not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}).scalar_one():
            return []
        names = sorted(Base.metadata.tables) if force else stale_tables(connection)
        for name in names:
            connection.execute(text(f'ANALYZE "{name}"'))
        return names


class StatisticsKeeper:
    """A daemon thread that keeps planner statistics fresh while autovacuum is off (PostgreSQL only).

    It checks every ``interval_seconds``, and sooner (at most once per ``NUDGE_SPACING_SECONDS``) when a write
    ``nudge``s it: a bulk load into an empty collection otherwise ran its first ten seconds on the plans of an
    empty table (measured: the first tenth of a 1,000,000-object load was the slowest).
    """

    NUDGE_SPACING_SECONDS = 1.0

    def __init__(self, engine: Engine, *, interval_seconds: float = 10.0) -> None:
        self.engine = engine
        self.interval = interval_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name != "postgresql" or autovacuum_enabled(self.engine):
            return
        self._thread = threading.Thread(target=self._run, name="ix-statistics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def nudge(self) -> None:
        """Objects were written: check soon rather than at the next interval (cheap; no-op when not running)."""
        if self._thread is not None:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                analyzed = analyze_stale(self.engine)
            except Exception as exc:
                if database_unavailable(exc):  # a restart: one line, not a traceback every interval
                    log.warning("refreshing planner statistics: the database is unavailable; trying again later")
                else:
                    log.exception("refreshing planner statistics failed")
                analyzed = []
            if analyzed:
                log.info("refreshed planner statistics of %s", ", ".join(analyzed))
            if self._stop.wait(self.NUDGE_SPACING_SECONDS):
                return
