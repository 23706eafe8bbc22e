"""How errors become responses: domain errors, database conflicts, invalid requests.

Every error body is `{"detail": ...}`. Validation errors echo the client's input, which
is made encodable first (`json_safe`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from catalog.api.responses import json_response
from catalog.errors import AuthenticationError, CatalogError

logger = logging.getLogger("catalog.api")


def json_safe(value: Any) -> Any:
    """Make echoed client input encodable: lone surrogates escaped; NaN, Infinity and
    integers past 64 bits (which orjson refuses) as text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _catalog_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, CatalogError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationError) else None
    return json_response({"detail": error.detail}, status_code=error.status_code, headers=headers)


def _integrity_error(request: Request, error: Exception) -> Response:
    # Services translate the constraint violations they expect; this is the safety net
    # for a race they did not foresee. Never a 500 for what is a conflict of data.
    logger.warning("integrity error: %s", error)
    return json_response({"detail": "Conflict with existing data"}, status_code=409)


def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    detail = json_safe(jsonable_encoder(error.errors()))
    return json_response({"detail": detail}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(CatalogError, _catalog_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
