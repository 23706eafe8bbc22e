"""How errors become responses: domain errors, database conflicts and outages, invalid
requests.

Every error body is `{"detail": ...}`. Validation errors echo the client's input, which
is made encodable first (`json_safe`). A database that is unavailable (db/errors.py) is a
503 with Retry-After, logged as one line per second at most, never a traceback per
request; any other database error is a bug and stays a 500.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from catalog.api.responses import json_response
from catalog.db.errors import DATABASE_ERRORS, is_unavailable
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


UNAVAILABLE_DETAIL = "The database is unavailable; retry later"


class OutageLog:
    """One log line per interval while the database is unavailable, with a count."""

    def __init__(
        self, message: str = "database unavailable, answering 503", interval: float = 1.0
    ) -> None:
        self.message = message
        self.interval = interval
        self._last = -interval
        self._suppressed = 0

    def note(self, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        more = f" (and {self._suppressed} more since the last line)" if self._suppressed else ""
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        logger.warning("%s%s: %s", self.message, more, reason)
        self._last, self._suppressed = now, 0


outage_log = OutageLog()


def unavailable_response(retry_after: int, detail: str = UNAVAILABLE_DETAIL) -> Response:
    """503: try again in `retry_after` seconds."""
    return json_response(
        {"detail": detail},
        status_code=503,
        headers={"Retry-After": str(retry_after)},
    )


def _database_error(request: Request, error: Exception) -> Response:
    if not is_unavailable(error):
        raise error  # a bug, not an outage: the outermost middleware logs it, answers 500
    outage_log.note(error)
    return unavailable_response(request.app.state.settings.retry_after_seconds)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(CatalogError, _catalog_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, _database_error)
