"""The store's side of live delivery: PostgreSQL LISTEN on a connection of its own, and the collection clocks
and auth epoch read in one go (SQLite, which has no NOTIFY). The triggers that NOTIFY are migration
``b7d2e4f1a9c3``."""

import threading
import uuid
from collections.abc import Callable, Sequence

import psycopg
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from indicator_exchange.store.engine import normalise_url
from indicator_exchange.store.models import AuthEpoch, Collection

COMMIT_CHANNEL = "ix_commit"
AUTH_CHANNEL = "ix_auth"


class ListenLost(Exception):
    """The LISTEN connection failed or could not be made (the database restarts, the network broke)."""


def conninfo_of(url: str) -> str:
    """A psycopg connection string from the service's SQLAlchemy URL."""
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def listen(
    url: str,
    *,
    on_notify: Callable[[str, str], None],
    on_listening: Callable[[], None],
    stop: threading.Event,
) -> None:
    """LISTEN on the commit and auth channels and hand every notification (channel, payload) to ``on_notify``
    until ``stop`` is set; ``on_listening`` once LISTEN is in place. ``ListenLost`` when the connection fails."""
    try:
        with psycopg.connect(conninfo_of(url), autocommit=True, connect_timeout=5) as connection:
            connection.execute(f"LISTEN {COMMIT_CHANNEL}")
            connection.execute(f"LISTEN {AUTH_CHANNEL}")
            on_listening()
            while not stop.is_set():
                for notify in connection.notifies(timeout=1.0):
                    on_notify(notify.channel, notify.payload)
    except psycopg.Error as exc:
        raise ListenLost(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def clocks(engine: Engine, collection_ids: Sequence[uuid.UUID]) -> tuple[int | None, list[tuple[uuid.UUID, int]]]:
    """The auth epoch and the clocks of ``collection_ids``, read together."""
    with engine.connect() as connection:
        epoch = connection.execute(select(AuthEpoch.epoch).where(AuthEpoch.id == 1)).scalar()
        rows = connection.execute(
            select(Collection.id, Collection.last_date_added).where(Collection.id.in_(collection_ids))
        ).all()
        connection.rollback()
    return epoch, [(row[0], int(row[1])) for row in rows]
