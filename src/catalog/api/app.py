"""The application factory: wiring of settings, database, middleware, errors and routes."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from catalog.api import observe
from catalog.api.deadline import DeadlineMiddleware
from catalog.api.errors import install_error_handlers
from catalog.api.middleware import RequestIdMiddleware
from catalog.api.responses import ORJSONResponse
from catalog.api.routes import auth, health, items, tags, users
from catalog.config import Settings, get_settings
from catalog.cursors import CursorCodec
from catalog.db.database import Database
from catalog.logs import configure_logging
from catalog.services.idempotency import purge_expired
from catalog.services.users import ensure_first_superuser
from catalog.telemetry import tracing

logger = logging.getLogger("catalog.api")


# Set by `catalog serve` for its workers once it has created the first superuser itself.
BOOTSTRAPPED_ENV = "CATALOG_FIRST_SUPERUSER_DONE"


async def bootstrap(settings: Settings, database: Database) -> None:
    """Create the configured first superuser (idempotent, safe with many workers)."""
    email, password = settings.first_superuser_email, settings.first_superuser_password
    if email is None or password is None:
        return
    async with database.unit_of_work() as uow:
        created = await ensure_first_superuser(uow, email, password.get_secret_value())
    if created:
        logger.info("created first superuser %s", email.strip().lower())


PURGE_INTERVAL_SECONDS = 600.0


async def purge_expired_keys_forever(database: Database) -> None:
    """Delete expired idempotency keys every few minutes (each worker; cheap, indexed)."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL_SECONDS * random.uniform(0.5, 1.5))
        try:
            async with database.unit_of_work() as uow:
                await purge_expired(uow)
        except Exception as error:  # an outage: the next round will do it
            logger.info("idempotency key purge skipped: %s", " ".join(str(error).split())[:200])


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the API. Tests pass their own settings and database; `catalog serve` neither."""
    settings = settings or get_settings()
    configure_logging(settings)
    signing_key = settings.signing_key()  # fail (or create the dev key) now, not at login
    owns_database = database is None
    tracer_provider = tracing.tracer_provider(settings)  # None unless tracing is on

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database.from_settings(settings)
        app.state.database = db
        try:
            # Without a first superuser to create, nothing here needs the database: the
            # service starts while it is down, answers 503, and serves once it is back.
            if os.environ.get(BOOTSTRAPPED_ENV) != "1":
                await bootstrap(settings, db)
            # Everything alive now (modules, routes, compiled statements) lives as long as
            # the process: keep it out of the cyclic GC's full collections.
            gc.freeze()
            purge = asyncio.create_task(purge_expired_keys_forever(db))
            try:
                async with observe.running(app, settings, db):
                    yield
            finally:
                purge.cancel()
        finally:
            if owns_database:
                await db.dispose()

    app = FastAPI(
        title="Catalog",
        version="0.1.0",
        summary="Users, the items they own, and the tags on those items.",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        telemetry=tracing.fastapi_telemetry(tracer_provider),
    )
    app.state.tracer_provider = tracer_provider
    app.state.settings = settings
    app.state.signing_key = signing_key
    app.state.cursor_codec = CursorCodec(signing_key)
    if database is not None:  # usable before startup, e.g. by ASGI test clients
        app.state.database = database
    # Added innermost first: the request id wraps everything, the deadline the app.
    app.add_middleware(
        DeadlineMiddleware,
        timeout=settings.request_timeout,
        retry_after=settings.retry_after_seconds,
    )
    # Outside the deadline (its 503s are counted), inside the request id (lines carry it).
    observe.install(app, settings)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    # Routers are matched in order (FastAPI keeps included routers nested): hottest first.
    for module in (items, tags, users, auth, health):
        app.include_router(module.router)
    if settings.admin:
        from catalog.admin import mount_admin  # sqladmin is imported only when it is on

        mount_admin(app, settings)
    return app
