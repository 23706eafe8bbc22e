"""The application factory: wiring of settings, database, middleware, errors and routes."""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from catalog.api.middleware import RequestIdMiddleware
from catalog.api.responses import ORJSONResponse, json_response
from catalog.api.routes import auth, health, items, tags, users
from catalog.config import Settings, get_settings
from catalog.db.session import Database
from catalog.errors import AuthenticationError, CatalogError
from catalog.logs import configure_logging
from catalog.pagination import CursorCodec
from catalog.services.users import ensure_user

logger = logging.getLogger("catalog.api")


async def _ensure_first_superuser(settings: Settings, database: Database) -> None:
    if settings.first_superuser_email is None or settings.first_superuser_password is None:
        return
    async with database.unit_of_work() as session:
        created = await ensure_user(
            session,
            email=settings.first_superuser_email,
            password=settings.first_superuser_password.get_secret_value(),
            is_superuser=True,
        )
    if created:
        logger.info("created first superuser %s", settings.first_superuser_email)


def _catalog_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, CatalogError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationError) else None
    return json_response({"detail": error.detail}, status_code=error.status_code, headers=headers)


def _integrity_error(request: Request, error: Exception) -> Response:
    # Services translate the constraint violations they expect; this is the safety net
    # for a race they did not foresee. Never a 500 for what is a conflict of data.
    logger.warning("integrity error: %s", error)
    return json_response({"detail": "Conflict with existing data"}, status_code=409)


def _json_safe(value: Any) -> Any:
    """Make echoed client input encodable: lone surrogates escaped; NaN, Infinity and
    integers past 64 bits (which orjson refuses) as text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _validation_error(request: Request, error: Exception) -> Response:
    # Validation errors echo the client's input, which may not be encodable as-is.
    assert isinstance(error, RequestValidationError)
    detail = _json_safe(jsonable_encoder(error.errors()))
    return json_response({"detail": detail}, status_code=422)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the API. Tests pass their own settings and database; `catalog serve` neither."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    signing_key = settings.signing_key()  # fail (or create the dev key) now, not at login
    owns_database = database is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database.from_settings(settings)
        app.state.database = db
        try:
            await _ensure_first_superuser(settings, db)
            # Everything alive now (modules, routes, compiled statements) lives as long as
            # the process: keep it out of the cyclic GC's full collections.
            gc.freeze()
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
    )
    app.state.settings = settings
    app.state.signing_key = signing_key
    app.state.cursor_codec = CursorCodec(signing_key)
    if database is not None:  # usable before startup, e.g. by ASGI test clients
        app.state.database = database
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(CatalogError, _catalog_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Routers are matched in order (FastAPI keeps included routers nested): hottest first.
    for module in (items, tags, users, auth, health):
        app.include_router(module.router)
    return app
