"""``Prefer: wait=N`` (RFC 7240 §4.3) on TAXII ``GET …/objects/``: an empty answer is held until a commit to
the collection or N seconds (at most ``IX_LIVE_MAX_WAIT_SECONDS``), then the poll is answered as any other,
with ``Preference-Applied: wait=N``. Without the preference nothing changes.

The wait costs no database work: the hub (``live.hub``) says when the collection's clock passes the one the
poll's own read saw; the poll is then read again through the same path (grants and TLP included), and held
again if what was committed is not visible to this caller.
"""

import re
from collections.abc import Awaitable, Callable

import anyio
from fastapi import Request
from fastapi.responses import Response

from indicator_exchange.audit.context import CollectionSeen
from indicator_exchange.live.hub import Hub

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


def _empty(request: Request, response: Response) -> bool:
    page = getattr(request.state, "page", None)
    return response.status_code == 200 and page is not None and getattr(page, "count", 1) == 0


async def hold(request: Request, response: Response, read_again: Callable[[bool], Awaitable[Response]]) -> Response:
    """``response`` (a poll's answer), or a later one when it was empty and the client prefers to wait;
    ``read_again(reauthenticate)`` answers the poll again."""
    hub: Hub | None = getattr(request.app.state, "live_hub", None)
    max_wait: int = request.app.state.settings.live_max_wait_seconds
    wait = None if hub is None else requested_wait(request.headers.getlist("prefer"), max_wait)
    if wait is None or hub is None:
        return response
    deadline = anyio.current_time() + wait
    while _empty(request, response):
        seen = getattr(request.state, "collection", None)
        remaining = deadline - anyio.current_time()
        if not isinstance(seen, CollectionSeen) or remaining <= 0:
            break
        wake = await hub.wait(seen.id, read_clock=seen.clock, mark=hub.mark(), timeout=remaining)
        if wake in ("timeout", "closed"):
            break
        response = await read_again(wake == "auth")
    response.headers["Preference-Applied"] = f"wait={wait}"
    return response
