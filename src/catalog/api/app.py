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
from catalog.api.admission import PerAddressGate
from catalog.api.conditional import if_match
from catalog.api.deps import get_current_user, get_reading_unit_of_work, get_unit_of_work
from catalog.api.docs import install_docs
from catalog.api.errors import install_error_handlers
from catalog.api.idempotency import idempotency_key
from catalog.api.middleware import stack as middleware_stack
from catalog.api.middleware.methods import PathMethods, method_not_allowed_handler
from catalog.api.mounts import redirect_mount_roots
from catalog.api.openapi import Documented, install_openapi
from catalog.api.responses import ORJSONResponse
from catalog.api.routes import auth, health, items, tags, users
from catalog.backup.marker import refuse_to_serve_incomplete_restore
from catalog.config import Settings, get_settings
from catalog.cursors import CursorCodec
from catalog.db.base import configure_models
from catalog.db.database import Database
from catalog.logs import configure_logging
from catalog.security import configure_hashing
from catalog.services.idempotency import purge_expired
from catalog.services.login_throttle import LoginPolicy
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
            # Never serve the data of a restore that did not finish (catalog.backup).
            await refuse_to_serve_incomplete_restore(db.engine)
            # Without a first superuser to create, nothing here needs the database: the
            # service starts while it is down, answers 503, and serves once it is back.
            if os.environ.get(BOOTSTRAPPED_ENV) != "1":
                await bootstrap(settings, db)
            configure_models()  # before the freeze below, not in the first request
            # Everything alive now (modules, routes, compiled statements) lives as long as
            # the process: keep it out of the cyclic GC's full collections.
            gc.freeze()
            db.start()
            purge = asyncio.create_task(purge_expired_keys_forever(db))
            try:
                async with observe.running(app, settings, db):
                    yield
            finally:
                purge.cancel()
        finally:
            await db.stop()
            if owns_database:
                await db.dispose()

    docs = settings.docs_enabled
    app = FastAPI(
        title="Catalog",
        version="0.1.0",
        summary="Users, the items they own, and the tags on those items.",
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        openapi_url="/openapi.json" if docs else None,
        docs_url=None,  # served offline by `install_docs`
        redoc_url=None,
        # Its redirect would be built from the Host header; paths have one spelling.
        redirect_slashes=False,
        telemetry=tracing.fastapi_telemetry(tracer_provider),
    )
    app.state.tracer_provider = tracer_provider
    app.state.settings = settings
    app.state.signing_key = signing_key
    app.state.cursor_codec = CursorCodec(signing_key)
    app.state.registrations = PerAddressGate(settings.registrations_per_address)
    app.state.login_policy = LoginPolicy(
        max_failures=settings.login_max_failures,
        max_failures_per_address=settings.login_max_failures_per_address,
        max_failures_per_account=settings.login_max_failures_per_account,
        window_seconds=settings.login_failure_window_seconds,
        max_block_seconds=settings.login_lockout_max_seconds,
    )
    configure_hashing(settings.password_hash_threads, settings.password_hash_queue)
    if database is not None:  # usable before startup, e.g. by ASGI test clients
        app.state.database = database
    _add_middleware(app, settings)
    install_error_handlers(app)
    # Each module's routes go on the app's own router, hottest first (matched in order).
    # `include_router` would keep each router nested (FastAPI 0.165), and a request is
    # then matched twice, once to find its router and once inside it: ~10% of the CPU
    # of a `GET /items/{id}` (py-spy). The routes are complete as their router made them
    # (prefix, tags, responses); the app adds nothing to them (no dependency overrides).
    for module in (items, tags, users, auth, health):
        app.router.routes.extend(module.router.routes)
    if docs:
        install_docs(app, openapi_url="/openapi.json")
    if settings.admin:
        from catalog.admin import mount_admin  # sqladmin is imported only when it is on

        mount_admin(app, settings)
    redirect_mount_roots(app)
    install_openapi(
        app,
        Documented(
            authentication=get_current_user,
            database=get_unit_of_work,
            reading=get_reading_unit_of_work,
            if_match=if_match,
            idempotency_key=idempotency_key,
            replicas=bool(settings.database_replica_urls),
        ),
    )
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The middleware stack (`api/middleware/stack.py`: one list, outermost first)."""
    methods = PathMethods(lambda: app.routes)
    app.add_exception_handler(405, method_not_allowed_handler(methods))
    observe.install(app, settings)  # /metrics
    # Starlette builds the chain from `user_middleware`, first entry outermost.
    app.user_middleware[:0] = middleware_stack.stack(settings, methods)
