"""`catalog serve`: the API under uvicorn, with its logging and metrics set up for the run."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from catalog.cli.common import USAGE_ERROR, fail
from catalog.config import get_settings

APP_FACTORY = "catalog.api.app:create_app"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[
        bool, typer.Option(help="Restart when the code changes (development).")
    ] = False,
    access_log: Annotated[
        bool | None,
        typer.Option(help="Log every request (default: the ACCESS_LOG setting, on)."),
    ] = None,
) -> None:
    """Serve the HTTP API with uvicorn (uvloop + httptools)."""
    if reload and workers > 1:
        fail("--reload and --workers > 1 cannot be combined", USAGE_ERROR)
    if access_log is not None:
        # Workers read their settings from the environment: pass the choice on there.
        os.environ["ACCESS_LOG"] = "true" if access_log else "false"
        get_settings.cache_clear()
    # Validate now, in one process with a readable error, rather than in every worker.
    settings = get_settings()
    settings.signing_key()  # creates the development key once, before workers race for it

    import uvicorn  # imported late: the other commands do not need it

    from catalog.logs import logging_config

    with ExitStack() as stack:
        if settings.metrics != "off":
            from catalog.telemetry import exposition

            if workers > 1 or reload:
                # The app runs in other processes: each writes its metrics into one
                # fresh directory, and a scrape of any process adds them all up.
                stack.enter_context(exposition.multiprocess_directory())
            # A metrics port is served by this process, which outlives its workers.
            port_taken = isinstance(settings.metrics, int) and not exposition.serve_on_port(
                settings.metrics
            )
            if port_taken:
                fail(f"METRICS: port {settings.metrics} is not available")
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            reload_dirs=[str(PACKAGE_DIR)] if reload else None,
            loop="uvloop",
            http="httptools",
            # The service logs each request itself (ACCESS_LOG), with route and user.
            access_log=False,
            log_config=logging_config(settings),
            log_level=settings.log_level.lower(),
        )
