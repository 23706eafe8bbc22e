"""Security headers on every response (pure ASGI; the header list is built once).

JSON gets a Content-Security-Policy that allows nothing (`default-src 'none'`) and may not
be framed; the interactive docs pages set their own (`api/docs.py`: assets from the service
only, the inline start-up script by a per-response nonce), so they get only the common
headers here. Mounted apps with pages of their own (the admin UI) set their own policy and
framing rules: they get only the common headers, since a second, stricter policy would
block their pages.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from catalog.api.middleware.asgi import adding_headers

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def _headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [*_COMMON, (b"content-security-policy", policy.encode())]


_OWN_POLICY = [header for header in _COMMON if header[0] != b"x-frame-options"]


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response, errors included."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        docs_paths: Iterable[str] = (),
        own_policy_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)
        self.own_policy_prefixes = own_policy_prefixes
        self.api_headers = _headers(API_POLICY)
        self.docs_headers = list(_COMMON)  # the pages set their policy (with a nonce)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.docs_paths:
            extra = self.docs_headers
        elif self.own_policy_prefixes and path.startswith(self.own_policy_prefixes):
            extra = _OWN_POLICY
        else:
            extra = self.api_headers
        await self.app(scope, receive, adding_headers(send, lambda: extra))
