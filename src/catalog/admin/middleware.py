"""The admin's request guards (pure ASGI, inside the admin's own app, so only under /admin).

`CSRFMiddleware`: sqladmin has no CSRF protection of its own. Every state-changing request
must carry the token kept in the signed session (the synchronizer token pattern): in the
`X-CSRF-Token` header (the admin's script adds it to its fetch and jQuery calls) or as the
`csrf_token` form field (the script adds it to every form); otherwise 403, before the
request reaches sqladmin. Logout is a GET link in sqladmin's pages and ends a session, so it
needs the token too (in its query string: the token dies with the session it ends).

`SecurityHeadersMiddleware`: the admin's pages may load nothing from elsewhere and may not
be framed (clickjacking).

`RelativeRedirectsMiddleware`: sqladmin builds its redirects with `url_for`, from the
request's `Host` header (`Host: evil.example` answered `Location: http://evil.example/...`).
They become relative references, or absolute under PUBLIC_BASE_URL when it is set.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_SESSION_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Safe methods that still change state: sqladmin's logout is a GET.
GUARDED_GETS = frozenset({"/logout"})
# Admin forms are small (a description is at most 2,000 characters).
MAX_BODY_BYTES = 1024 * 1024
REFUSED = "CSRF token missing or invalid: reload the page and try again."

# Only what the package serves: its own CSS, scripts and fonts, and inline SVG images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; font-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)
_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use (pages render it for the script)."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def rotate_csrf_token(session: dict[str, Any]) -> None:
    """Give the session a new token (at login: a token seen before it is worth nothing)."""
    session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class CSRFMiddleware:
    """Refuse (403) a state-changing admin request without the session's CSRF token.

    Must sit inside the session middleware: it reads `scope["session"]`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _changes_state(scope):
            await self.app(scope, receive, send)
            return
        expected = scope["session"].get(CSRF_SESSION_KEY)
        if scope["method"] in SAFE_METHODS:  # a guarded GET: the token is in its query
            if expected is None:  # no session (it expired, say): nothing to sign out of
                await self.app(scope, receive, send)
                return
            sent = Request(scope).query_params.get(CSRF_FIELD)
        else:
            body = await _read_body(receive, MAX_BODY_BYTES)
            if body is None:
                await PlainTextResponse("Request body too large", 413)(scope, receive, send)
                return
            receive = _replay(body)
            sent = Request(scope).headers.get(CSRF_HEADER) or await _form_token(scope, body)
        if not _matches(expected, sent):
            await PlainTextResponse(REFUSED, 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _changes_state(scope: Scope) -> bool:
    return scope["method"] not in SAFE_METHODS or _route_path(scope) in GUARDED_GETS


def _matches(expected: object, sent: str | None) -> bool:
    """Whether the token sent is the session's (compared in constant time, as bytes: any
    text may be sent)."""
    if not isinstance(expected, str) or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode("utf-8", "surrogatepass"))


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Callable[[], Awaitable[Message]]:
    """A `receive` that hands the app the body already read, then waits like the server."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _form_token(scope: Scope, body: bytes) -> str | None:
    """The `csrf_token` field of a urlencoded or multipart form body (None for others)."""
    try:
        async with Request(scope, _replay(body)).form() as form:
            value = form.get(CSRF_FIELD)
    except (HTTPException, MultiPartException, ValueError):  # a malformed body has no token
        return None
    return value if isinstance(value, str) else None


class SecurityHeadersMiddleware:
    """Add the admin's security headers (CSP, no framing) to every admin response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RelativeRedirectsMiddleware:
    """Make every admin `Location` a path (or PUBLIC_BASE_URL + path), never Host-built."""

    def __init__(self, app: ASGIApp, public_base_url: str | None = None) -> None:
        self.app = app
        self.base = (public_base_url or "").rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_relative(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                location = headers.get("location")
                if location is not None:
                    headers["location"] = self._target(scope, location)
            await send(message)

        await self.app(scope, receive, send_relative)

    def _target(self, scope: Scope, location: str) -> str:
        parts = urlsplit(location)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        if parts.fragment:
            path += f"#{parts.fragment}"
        if not self.base:
            # "//evil.example" would be absolute too: a path starts with exactly one slash.
            return "/" + path.lstrip("/")
        # The app's own root (a proxy's prefix), not the admin's mount point under it.
        root: str = scope.get("app_root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return self.base + "/" + path.lstrip("/")
