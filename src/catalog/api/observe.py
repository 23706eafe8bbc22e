"""The service observed from the outside: request metrics, the access log, /metrics.

`install` (from `create_app`) adds the /metrics route when METRICS=on; the timing of
requests (metrics and the access line) is `middleware/observed.py`, in the middleware
stack (`middleware/stack.py`). `running` (in the lifespan,
i.e. in each worker after it started) connects the database and login hooks, the pool
gauges, the metrics port and the trace exporter, and disconnects them at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from catalog import hooks
from catalog.config import Settings
from catalog.db.database import Database
from catalog.db.observe import WaitCountingPool, statement_executed
from catalog.telemetry import exposition, tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

METRICS_PATH = "/metrics"


async def _metrics_endpoint(request: Request) -> Response:
    # Reading every worker's files is blocking work: off the event loop.
    return Response(await run_in_threadpool(exposition.render), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, settings: Settings) -> None:
    """Add /metrics when the settings ask for it."""
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
