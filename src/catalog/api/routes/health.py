"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from starlette.responses import Response

from catalog.api.deps import ReadingUnitOfWorkDep, SettingsDep
from catalog.api.errors import unavailable_response
from catalog.api.openapi import errors, operation_id
from catalog.api.responses import json_response
from catalog.schemas import Health
from catalog.services.health import ping

router = APIRouter(tags=["health"], generate_unique_id_function=operation_id)
logger = logging.getLogger("catalog.api")
READY_TIMEOUT_SECONDS = 2.0


@router.get("/health", response_model=Health)
async def health() -> Response:
    """The process is up (does not touch the database)."""
    return json_response({"status": "ok"})


@router.get(
    "/health/ready",
    response_model=Health,
    responses=errors((503, "The database does not answer")),
)
async def ready(uow: ReadingUnitOfWorkDep, settings: SettingsDep) -> Response:
    """The database answers a trivial query within a short timeout."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await ping(uow)
    except Exception as error:  # any failure means "not ready", never a 500
        logger.warning("readiness check failed: %s", " ".join(str(error).split())[:200])
        return unavailable_response(settings.retry_after_seconds)
    return json_response({"status": "ok"})
