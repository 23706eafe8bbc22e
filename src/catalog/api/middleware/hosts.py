"""ALLOWED_HOSTS: answer 400 to a Host header the deployment does not serve (pure ASGI).

Off when the list is empty (the default). Entries are host names, optionally with a
leading `*.` for any subdomain; ports are ignored. Nothing in the API builds a URL from
the Host header (`Link` is relative or from PUBLIC_BASE_URL), so this is defence in depth
against DNS rebinding and poisoned caches in front of the service.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from catalog.api.middleware.asgi import header
from catalog.api.responses import json_error_messages

INVALID_HOST = "Invalid host header"


class AllowedHostsMiddleware:
    """Refuse requests whose Host is not one of `allowed` (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str]) -> None:
        self.app = app
        names = {name.lower().rstrip(".") for name in allowed}
        self.exact = frozenset(n for n in names if not n.startswith("*."))
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self.refusal = json_error_messages(400, INVALID_HOST)

    def allows(self, host: str) -> bool:
        """Whether a Host header value (with or without a port) is served."""
        if host.startswith("["):  # [IPv6]:port
            name = host[: host.find("]") + 1]
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        name = name.lower().rstrip(".")
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = header(scope, b"host") or b""
        if self.allows(host.decode("latin-1")):
            await self.app(scope, receive, send)
            return
        start, body = self.refusal
        await send(dict(start))
        await send(dict(body))
