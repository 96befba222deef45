"""Who the client is and which URL it used: forwarded headers from trusted proxies only, a pinned public base
URL, and HSTS over HTTPS.

Discovery URLs, the dashboard cookie's ``Secure`` flag, same-origin checks, the audit trail's client address
and the ``/metrics`` allow-list all read the ASGI scope. ``X-Forwarded-For``/``-Proto``/``-Host`` rewrite it
only when the connection comes from ``IX_TRUSTED_PROXIES`` (uvicorn's own proxy handling, which trusts any
loopback client, is off: ``serving``). ``IX_PUBLIC_BASE_URL`` fixes scheme and host whatever anyone sends;
without it a client that is not a trusted proxy gets URLs naming the address its connection reached, so a
forged ``Host`` cannot rewrite the URLs the server hands out.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indicator_exchange.settings import IPNetwork, Settings, address_in


class EdgeHeaders:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.trusted: tuple[IPNetwork, ...] = settings.trusted_proxy_networks
        self.public: tuple[str, bytes] | None = None
        if settings.public_base_url:
            scheme, _, host = settings.public_base_url.partition("://")
            self.public = (scheme, host.encode("latin-1"))
        self.hsts = f"max-age={settings.hsts_seconds}".encode() if settings.hsts_seconds > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        sent_host = next((value for name, value in scope["headers"] if name == b"host"), None)
        if self.public is not None:
            scope = dict(scope, scheme=self.public[0], headers=_with_host(scope["headers"], self.public[1]))
        elif self.trusted and client and address_in(client[0], self.trusted):
            scope = self._forwarded(scope)
        elif scope.get("server"):
            # Not a proxy of ours: URLs name the address the connection reached, not what the client wrote.
            scope = dict(scope, headers=_with_host(scope["headers"], _server_host(scope)))
        # What the browser itself sent, for same-origin checks (its Origin names that host).
        scope["ix_sent_host"] = sent_host
        if self.hsts is None or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return
        hsts = self.hsts

        async def with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"strict-transport-security", hsts)]
            await send(message)

        await self.app(scope, receive, with_hsts)

    def _forwarded(self, scope: Scope) -> Scope:
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"):
                # Repeated headers are one comma-separated list, in the order the proxies added them.
                headers[name] = headers[name] + b"," + value if name in headers else value
        scope = dict(scope)
        forwarded_for = headers.get(b"x-forwarded-for")
        if forwarded_for:
            # The right-most address that is not one of our proxies: anything left of it the client wrote.
            hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",") if hop.strip()]
            while len(hops) > 1 and address_in(hops[-1], self.trusted):
                hops.pop()
            if hops:
                scope["client"] = (hops[-1][:64], 0)
        proto = headers.get(b"x-forwarded-proto")
        if proto:
            last = proto.decode("latin-1").split(",")[-1].strip().lower()
            if last in ("http", "https"):
                scope["scheme"] = last
        host = headers.get(b"x-forwarded-host")
        if host:
            last_host = host.split(b",")[-1].strip()
            if last_host and _plausible_host(last_host):
                scope["headers"] = _with_host(scope["headers"], last_host)
        return scope


def _server_host(scope: Scope) -> bytes:
    host, port = scope["server"]
    host = f"[{host}]" if ":" in str(host) else str(host)
    default = 443 if scope.get("scheme") == "https" else 80
    return (host if port in (None, default) else f"{host}:{port}").encode("latin-1")


def _with_host(headers: list[tuple[bytes, bytes]], host: bytes) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name != b"host"] + [(b"host", host)]


def _plausible_host(host: bytes) -> bool:
    """A host[:port] (name, IPv4 or bracketed IPv6), nothing that could smuggle a path or a second URL."""
    return len(host) <= 255 and all(c < 128 and (chr(c).isalnum() or c in b".-:[]_") for c in host)
