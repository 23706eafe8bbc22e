"""The service observed from the outside: request metrics, the access log, /metrics.

`install` (from `create_app`) adds `ObservedRequestsMiddleware` when metrics or the
access log are on, and the /metrics route when METRICS=on. `running` (in the lifespan,
i.e. in each worker after it started) connects the database and login hooks, the pool
gauges, the metrics port and the trace exporter, and disconnects them at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from time import perf_counter
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog import hooks
from catalog.config import Settings
from catalog.db.database import Database
from catalog.db.observe import WaitCountingPool, statement_executed
from catalog.logs import user_id_var
from catalog.telemetry import exposition, tracing
from catalog.telemetry.metrics import UNMATCHED, Metrics

METRICS_PATH = "/metrics"
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


async def _metrics_endpoint(request: Request) -> Response:
    # Reading every worker's files is blocking work: off the event loop.
    return Response(await run_in_threadpool(exposition.render), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware and /metrics that the settings ask for (before RequestId's)."""
    metrics = None if settings.metrics == "off" else exposition.metrics()
    if metrics is not None or settings.access_log:
        app.add_middleware(
            ObservedRequestsMiddleware, metrics=metrics, access_log=settings.access_log
        )
    if settings.metrics == "on":
        app.add_api_route(
            METRICS_PATH,
            _metrics_endpoint,
            methods=["GET"],
            include_in_schema=False,
            response_class=Response,
        )


@asynccontextmanager
async def running(app: FastAPI, settings: Settings, database: Database) -> AsyncIterator[None]:
    """The lifespan part: hooks, pool gauges, metrics port and traces, for one worker."""
    stops: list[Callable[[], None]] = []
    sampler: asyncio.Task[None] | None = None
    pool = database.engine.pool
    try:
        if settings.metrics != "off":
            metrics = exposition.metrics()
            stops.append(statement_executed.subscribe(metrics.observe_statement))
            stops.append(hooks.login_failed.subscribe(metrics.observe_login_failure))
            stops.append(hooks.idempotent_replayed.subscribe(metrics.observe_replay))
            stops.append(hooks.lsn_ignored.subscribe(metrics.observe_lsn_ignored))
            if isinstance(pool, WaitCountingPool):
                metrics.pools.append(pool)
                stops.append(lambda: metrics.pools.remove(pool))
            if exposition.multiprocess_dir() is not None:
                sampler = asyncio.create_task(metrics.sample_live_values())
            if isinstance(settings.metrics, int):
                exposition.serve_on_port(settings.metrics)
        provider: TracerProvider | None = getattr(app.state, "tracer_provider", None)
        if provider is not None:
            stops.append(tracing.start(provider, settings))
        yield
    finally:
        if sampler is not None:
            sampler.cancel()
        for stop in reversed(stops):
            stop()
        if settings.metrics != "off":
            exposition.process_exiting()
