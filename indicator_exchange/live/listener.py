"""Where a worker hears of commits: one dedicated LISTEN connection (PostgreSQL), or a clock poller (SQLite).

PostgreSQL: triggers (migration ``live_notify``) send ``NOTIFY ix_commit, '<collection id> <clock>'`` from
the committing transaction whenever a collection's clock moves, and ``NOTIFY ix_auth`` when the auth epoch
does; PostgreSQL delivers them at commit, to every listening connection of every worker of every instance.
The connection must be direct (a transaction-mode pooler drops LISTEN). When it breaks, the listener
reconnects with backoff and tells the hub notifications may have been missed (``Hub.note_gap``), so every
waiter reads again: nothing is lost across a database restart.

SQLite (one host, no NOTIFY): while anybody waits, a thread reads the watched collections' clocks and the auth
epoch every ``IX_LIVE_POLL_SECONDS``, one small statement each; with no waiter it reads nothing.
"""

import logging
import threading
import uuid

from sqlalchemy import Engine

from indicator_exchange.live.hub import Hub
from indicator_exchange.settings import Settings
from indicator_exchange.store import notify
from indicator_exchange.store.notify import AUTH_CHANNEL, ListenLost

log = logging.getLogger(__name__)

_MAX_BACKOFF = 5.0


def parse_commit(payload: str) -> tuple[uuid.UUID, int] | None:
    collection, _, clock = payload.partition(" ")
    try:
        return uuid.UUID(collection), int(clock)
    except ValueError:
        return None


class PgListener:
    """The worker's LISTEN connection, on its own thread."""

    def __init__(self, url: str, hub: Hub) -> None:
        self._url = url
        self._hub = hub
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ix-live-listener", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.1

        def listening() -> None:
            nonlocal backoff
            self.connected.set()
            self._hub.note_gap()  # whatever was committed while we were not listening
            backoff = 0.1

        while not self._stop.is_set():
            try:
                notify.listen(self._url, on_notify=self._dispatch, on_listening=listening, stop=self._stop)
            except ListenLost as exc:
                if self._stop.is_set():
                    return
                self.connected.clear()
                log.warning("live: the LISTEN connection failed (%s); reconnecting in %.1fs", exc, backoff)
                self._hub.note_gap()
                self._stop.wait(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == AUTH_CHANNEL:
            self._hub.note_auth()
            return
        parsed = parse_commit(payload)
        if parsed is not None:
            self._hub.note_commit(*parsed)


class SqlitePoller:
    """Reads watched clocks while anybody waits (SQLite has no NOTIFY)."""

    def __init__(self, engine: Engine, hub: Hub, *, interval: float) -> None:
        self._engine = engine
        self._hub = hub
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ix-live-poller", daemon=True)
        self._epoch: int | None = None
        self.connected = threading.Event()
        self.connected.set()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            watched = self._hub.watched()
            if not watched:
                continue
            try:
                self._poll(watched)
            except Exception as exc:  # a locked or missing file: try again next tick
                log.warning("live: reading collection clocks failed: %s", exc)

    def _poll(self, watched: list[uuid.UUID]) -> None:
        epoch, rows = notify.clocks(self._engine, watched)
        # The first read after start has nothing to compare with: a key revoked between a stream's
        # authentication and that read would pass unnoticed, so the waiters check their credentials once.
        if epoch != self._epoch:
            self._hub.note_auth()
        self._epoch = epoch
        for collection_id, clock in rows:
            self._hub.note_commit(collection_id, clock)


Listener = PgListener | SqlitePoller


def start_live(settings: Settings, engine: Engine) -> tuple[Hub, Listener]:
    """The worker's hub and what feeds it, started (``stop_live`` at shutdown)."""
    hub = Hub()
    listener: Listener
    if engine.dialect.name == "postgresql":
        listener = PgListener(settings.session_database_url, hub)  # LISTEN needs the server, not a pooler
    else:
        listener = SqlitePoller(engine, hub, interval=settings.live_poll_seconds)
    listener.start()
    return hub, listener


def stop_live(hub: Hub, listener: Listener) -> None:
    hub.close()
    listener.close()
