"""`catalog serve`: the API under uvicorn, with its logging and metrics set up for the run."""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from catalog.cli.common import USAGE_ERROR, fail
from catalog.config import Settings, get_settings
from catalog.schemas import validation_message

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
    wait_for_db: Annotated[
        float,
        typer.Option(
            min=0,
            help="With FIRST_SUPERUSER_*: how long to wait for the database to create it.",
        ),
    ] = 10.0,
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
    _refuse_incomplete_restore(settings)
    from catalog.api.app import BOOTSTRAPPED_ENV  # late: only `serve` needs the app

    _refuse_unknown_schema(settings)
    if settings.first_superuser_email is not None:
        # Once, here, before any worker starts: a start that cannot succeed fails now,
        # with one line and a non-zero exit, instead of in every worker.
        _bootstrap(settings, wait_for_db)
        os.environ[BOOTSTRAPPED_ENV] = "1"

    import uvicorn  # imported late: the other commands do not need it

    from catalog.cli.http_protocol import BoundedHttpToolsProtocol
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
            # httptools with the head bounded in size and time (MAX_HEADER_BYTES,
            # HEADER_TIMEOUT_SECONDS): uvicorn bounds neither (cli/http_protocol.py).
            http=BoundedHttpToolsProtocol,
            # The service logs each request itself (ACCESS_LOG), with route and user.
            access_log=False,
            log_config=logging_config(settings),
            log_level=settings.log_level.lower(),
            # In-flight requests get this long after SIGTERM; then they are cancelled, which
            # rolls back their units of work, and the process exits.
            timeout_graceful_shutdown=settings.shutdown_timeout,
            server_header=False,  # no banner naming the server software
            # X-Forwarded-For is believed only from TRUSTED_PROXIES (uvicorn would trust
            # 127.0.0.1 by default); it is the client address login throttling counts.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies) or None,
        )


def _refuse_unknown_schema(settings: Settings) -> None:
    """Refuse to serve a database a newer release migrated (its revision is unknown here).

    Unless UNKNOWN_SCHEMA_REVISION=serve: the previous release's instances during a rolling
    upgrade, on a schema made compatible with them (expand, then contract). A database
    that is down now is not checked: the service starts, answers 503 until it is back.
    """
    from sqlalchemy.exc import OperationalError

    from catalog.db.errors import is_unavailable
    from catalog.migrations import runner

    try:
        unknown = runner.unknown_revisions(settings)
    except Exception as error:
        # psycopg's refused or failed connection carries no SQLSTATE: OperationalError.
        if is_unavailable(error) or isinstance(error, OperationalError):
            return
        raise
    if not unknown:
        return
    message = runner.unknown_revision_message(unknown)
    if settings.unknown_schema_revision == "serve":
        typer.secho(f"warning: {message}; serving anyway (UNKNOWN_SCHEMA_REVISION=serve)", err=True)
        return
    fail(f"{message} (or set UNKNOWN_SCHEMA_REVISION=serve if the schema is compatible)")


def _bootstrap(settings: Settings, wait: float) -> None:
    """Create the first superuser, retrying while the database is unavailable."""
    from catalog.api.app import bootstrap
    from catalog.db.database import Database
    from catalog.db.errors import is_unavailable

    async def run() -> None:
        deadline = time.monotonic() + wait
        database = Database.from_settings(settings)
        try:
            while True:
                try:
                    await bootstrap(settings, database)
                    return
                except Exception as error:
                    if not is_unavailable(error) or time.monotonic() >= deadline:
                        raise
                await asyncio.sleep(0.5)
        finally:
            await database.dispose()

    try:
        asyncio.run(run())
    except ValidationError as error:
        fail(f"FIRST_SUPERUSER_*: {validation_message(error)}", USAGE_ERROR)
    except Exception as error:
        if not is_unavailable(error):
            raise
        fail(f"cannot create the first superuser: the database is unavailable ({error})")


def _refuse_incomplete_restore(settings: Settings) -> None:
    """One clear line, before any worker starts, if a restore into the database never finished."""
    from sqlalchemy.exc import SQLAlchemyError

    from catalog.backup import RestoreIncompleteError, refuse_incomplete_restore
    from catalog.db.engine import read_once

    try:
        read_once(settings, refuse_incomplete_restore)
    except RestoreIncompleteError as error:
        fail(f"not serving: {error.detail}")
    except (SQLAlchemyError, OSError):
        pass  # unreachable now: the app checks again as it starts, and answers 503 until then
