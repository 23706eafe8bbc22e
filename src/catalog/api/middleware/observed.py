"""Request metrics and the access log line: one timing of every HTTP request (pure ASGI)."""

from __future__ import annotations

import logging
import time
from time import perf_counter
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.logs import user_id_var
from catalog.telemetry.metrics import UNMATCHED, Metrics

access_logger = logging.getLogger("catalog.access")
_INFO = logging.INFO


class ObservedRequestsMiddleware:
    """Times every HTTP request once, for the metrics and the access log line.

    Sits inside `RequestIdMiddleware`, so the line carries the request id. The route
    label is the matched route's template (`/items/{item_id}`), never the raw path.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None, access_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = _AccessLog() if access_log else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # unless a response starts: an exception escaped before one did

        async def send_and_see_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight += 1
        user_token = user_id_var.set(None)
        try:
            await self.app(scope, receive, send_and_see_status)
        finally:
            seconds = perf_counter() - started
            route = _route_template(scope)
            if metrics is not None:
                metrics.in_flight -= 1
                metrics.observe_request(scope["method"], route, status, seconds)
            if self.access_log is not None and access_logger.isEnabledFor(_INFO):
                self.access_log.write(scope, route, status, seconds)
            user_id_var.reset(user_token)


def _route_template(scope: Scope) -> str:
    """The matched route's template: the label, bounded by the routes the app defines."""
    route = scope.get("route")
    # A Mount's own path is in root_path already (below): it adds only "/{path}".
    template: str | None = None if isinstance(route, Mount) else getattr(route, "path_format", None)
    if "app_root_path" in scope:
        # Inside a mounted application (the admin): its routes are relative to the mount.
        mount: str = scope["root_path"][len(scope["app_root_path"]) :]
        return mount + (template or "/{path}")
    return template or UNMATCHED


class _AccessLog:
    """Writes the access line of a request through the "catalog.access" logger.

    Its records are copies of one made with `makeRecord`, with the time and the values
    filled in: LogRecord's own constructor (thread, process, source lookups) costs about
    as much as formatting and writing the line.
    """

    def __init__(self) -> None:
        self._prototype: dict[str, Any] | None = None

    def write(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        client = scope.get("client")
        method = scope["method"]
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "user_id": user_id_var.get(),
            "client": client[0] if client else None,
        }
        prototype = self._prototype
        if prototype is None:  # made in the serving process, after any fork
            made = access_logger.makeRecord(access_logger.name, _INFO, "", 0, "", (), None)
            prototype = self._prototype = made.__dict__
        record = logging.LogRecord.__new__(logging.LogRecord)
        values = record.__dict__
        values.update(prototype)
        now = time.time()
        values["created"] = now
        values["msecs"] = (now - int(now)) * 1000
        values["relativeCreated"] += (now - prototype["created"]) * 1000
        values["msg"] = "%s %s %d"
        values["args"] = (method, route, status)
        values["fields"] = fields
        access_logger.handle(record)
