"""`OPTIONS`, `HEAD` and `405 Method Not Allowed`, with the full `Allow` list of the path.

Each method of a path is a route of its own, so the router's 405 names only the first
route's methods (`GET` for `/items`, which also takes `POST`), and nothing answers
`OPTIONS`. FastAPI's routes take no `HEAD` either: `HeadMiddleware` answers it on every path
that takes `GET`, with the `GET`'s headers and no body (RFC 9110, 9.3.2). The methods per
path are collected once, on first use, from the app's routes. CORS preflights (with
`Access-Control-Request-Method`) are CORSMiddleware's, outside.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.api.openapi import api_routes
from catalog.api.responses import json_response


class PathMethods:
    """The methods each route path takes, matched by the routes' own path patterns."""

    def __init__(self, routes: Callable[[], Iterable[BaseRoute]]) -> None:
        self._routes = routes
        self._table: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def _build(self) -> list[tuple[re.Pattern[str], frozenset[str]]]:
        methods: dict[str, set[str]] = {}
        patterns: dict[str, re.Pattern[str]] = {}
        for route in api_routes(list(self._routes())):
            methods.setdefault(route.path_regex.pattern, set()).update(route.methods or ())
            patterns[route.path_regex.pattern] = route.path_regex
        return [
            (
                patterns[key],
                frozenset(found | {"OPTIONS"} | ({"HEAD"} if "GET" in found else set())),
            )
            for key, found in methods.items()
        ]

    def allowed(self, scope: Scope) -> str | None:
        """The `Allow` value for the request's path ("GET, HEAD, OPTIONS, POST"), or None."""
        found = self.methods(scope)
        return ", ".join(sorted(found)) if found else None

    def methods(self, scope: Scope) -> set[str]:
        """The methods the request's path takes (none for a path no API route has)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # routes match below the mount point
            path = path[len(root) :]
        if self._table is None:
            self._table = self._build()
        found: set[str] = set()
        for pattern, methods in self._table:
            if pattern.match(path):
                found |= methods
        return found


class OptionsMiddleware:
    """Answer `OPTIONS` on a known path with 204 and its `Allow` list (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, methods: PathMethods) -> None:
        self.app = app
        self.methods = methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            allow = self.methods.allowed(scope)
            if allow is not None:
                await Response(status_code=204, headers={"Allow": allow})(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HeadMiddleware:
    """Answer `HEAD` on a path that takes `GET` as the `GET`, without its body (pure ASGI).

    The `GET` runs as usual (its `Content-Length`, `ETag`, conditional 304...), in a copy
    of the scope: the server still sees `HEAD` (uvicorn sends no body for it either). The
    matched route is copied back for the access log and metrics, which label by route.
    """

    def __init__(self, app: ASGIApp, *, methods: PathMethods) -> None:
        self.app = app
        self.methods = methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or "GET" not in self.methods.methods(scope)
        ):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, headers_only)
        finally:
            scope.update((key, value) for key, value in as_get.items() if key != "method")


def method_not_allowed_handler(methods: PathMethods) -> Callable[[Request, Exception], Response]:
    """The 405 handler: the router's answer, with the path's full `Allow` list."""

    def handle(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        allow = methods.allowed(request.scope) or (error.headers or {}).get("Allow", "")
        return json_response({"detail": error.detail}, status_code=405, headers={"Allow": allow})

    return handle
