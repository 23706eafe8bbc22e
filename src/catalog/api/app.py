"""The application factory: wiring of settings, database, middleware, errors and routes."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from catalog.api import observe
from catalog.api.errors import install_error_handlers
from catalog.api.middleware import RequestIdMiddleware
from catalog.api.responses import ORJSONResponse
from catalog.api.routes import auth, health, items, tags, users
from catalog.config import Settings, get_settings
from catalog.cursors import CursorCodec
from catalog.db.database import Database
from catalog.logs import configure_logging
from catalog.schemas import UserCreate
from catalog.services.users import ensure_user
from catalog.telemetry import tracing

logger = logging.getLogger("catalog.api")


async def _ensure_first_superuser(settings: Settings, database: Database) -> None:
    if settings.first_superuser_email is None or settings.first_superuser_password is None:
        return
    # The API's own rules: the email normalized and the password checked as at registration.
    data = UserCreate(
        email=settings.first_superuser_email,
        password=settings.first_superuser_password.get_secret_value(),
    )
    async with database.unit_of_work() as uow:
        created = await ensure_user(uow, data, is_superuser=True)
    if created:
        logger.info("created first superuser %s", data.email)


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
            await _ensure_first_superuser(settings, db)
            # Everything alive now (modules, routes, compiled statements) lives as long as
            # the process: keep it out of the cyclic GC's full collections.
            gc.freeze()
            async with observe.running(app, settings, db):
                yield
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
    observe.install(app, settings)  # inside RequestIdMiddleware: its lines carry the id
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    # Routers are matched in order (FastAPI keeps included routers nested): hottest first.
    for module in (items, tags, users, auth, health):
        app.include_router(module.router)
    return app
