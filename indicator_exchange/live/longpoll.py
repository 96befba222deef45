"""``Prefer: wait=N`` (RFC 7240 §4.3) on TAXII ``GET …/objects/``: an empty answer is held until a commit to
the collection or N seconds (at most ``IX_LIVE_MAX_WAIT_SECONDS``), then the poll is answered as any other,
with ``Preference-Applied: wait=N``. Without the preference nothing changes.

The wait costs no database work: the hub (``live.hub``) says when the collection's clock passes the one the
poll's own read saw; the poll is then read again through the same path (grants and TLP included), and held
again if what was committed is not visible to this caller.
"""

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import anyio

from indicator_exchange.live.hub import Hub


class _Page(Protocol):
    @property
    def count(self) -> int: ...
    @property
    def clock(self) -> int | None: ...


class _Collection(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


class Answer(Protocol):
    """A poll's answer as ``taxii.poll`` serves it (typed structurally: this module sits below taxii/)."""

    @property
    def collection(self) -> _Collection: ...
    @property
    def page(self) -> _Page: ...


A = TypeVar("A", bound=Answer)

_WAIT = re.compile(r"^\s*wait\s*=\s*\"?([0-9]{1,9})\"?\s*$", re.IGNORECASE)


def requested_wait(headers: list[str], max_wait: int) -> int | None:
    """The ``wait`` preference in seconds, clamped to ``max_wait``; ``None`` when absent or unreadable (a
    server ignores a preference it does not understand, RFC 7240 §2)."""
    for header in headers:
        for preference in header.split(","):
            token = preference.split(";", 1)[0]
            found = _WAIT.match(token)
            if found:
                return min(int(found[1]), max_wait)
    return None


async def hold(
    hub: Hub | None, prefer: list[str], max_wait: int, served: A, again: Callable[[bool], Awaitable[A]]
) -> tuple[A, int | None]:
    """``served`` (a poll's answer), or a later one when it was empty and the client prefers to wait (``prefer``:
    its ``Prefer`` headers); ``again(reauthenticate)`` serves the poll again. Also the wait applied, if any."""
    wait = None if hub is None else requested_wait(prefer, max_wait)
    if wait is None or hub is None:
        return served, None
    deadline = anyio.current_time() + wait
    while served.page.count == 0:
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            break
        mark = hub.mark()
        wake = await hub.wait(served.collection.id, read_clock=served.page.clock, mark=mark, timeout=remaining)
        if wake in ("timeout", "closed"):
            break
        served = await again(wake == "auth")
    return served, wait
