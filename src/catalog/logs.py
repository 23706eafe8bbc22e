"""Logging: text for a terminal or one JSON object per line, with the request's id.

Every record carries the id of the request being served when it was logged
(`request_id_var`, set by `RequestIdMiddleware`). `catalog serve` configures the whole
process (`logging_config`, handed to uvicorn so that its own lines are formatted the
same way); `create_app` configures the "catalog" loggers alone (`configure_logging`),
which is all a test or a foreign server gets.

Structured fields go in `extra={"fields": {...}}`: JSON lines carry them as keys, text
lines append them as `key=value`.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

from catalog.config import Settings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# The authenticated caller of the request being served, for its access log line.
user_id_var: ContextVar[int | None] = ContextVar("user_id", default=None)
_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` from the current request's context."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class TextFormatter(logging.Formatter):
    """`time level logger [request id] message key=value...`."""

    # Fields the access line's message already shows.
    _IN_MESSAGE = frozenset({"method", "route", "status"})

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        text = super().format(record)
        fields: dict[str, Any] | None = record.__dict__.get("fields")
        if not fields:
            return text
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if k not in self._IN_MESSAGE)
        head, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{head} {extra}{newline}{rest}"


_second_cache: tuple[int, str] = (-1, "")


def _utc_iso(created: float) -> str:
    """`2026-11-24T22:27:01.123Z`; the part up to the second is formatted once a second."""
    global _second_cache
    second = int(created)
    cached_second, prefix = _second_cache
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache = (second, prefix)
    return f"{prefix}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, pid, fields."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        data: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id == "-" else request_id,
            "pid": record.process,
        }
        fields = record.__dict__.get("fields")
        if fields:
            data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(data, default=str).decode()


def formatter_for(settings: Settings) -> logging.Formatter:
    """The formatter LOG_FORMAT asks for."""
    return JsonFormatter() if settings.json_logs else TextFormatter()


def _skip_costly_record_fields() -> None:
    # Neither format shows thread or process names; looking them up costs on every record.
    logging.logThreads = False
    logging.logMultiprocessing = False


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written, as `logging.lastResort` does: the
    handler outlives the stream that was stderr when it was made (a test's capture)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_CURRENT_STDERR = _CurrentStderr()


def configure_logging(settings: Settings) -> None:
    """Send the "catalog" loggers to stderr in the configured format (idempotent)."""
    _skip_costly_record_fields()
    logger = logging.getLogger("catalog")
    logger.setLevel(settings.log_level)
    logger.propagate = False
    ours = [h for h in logger.handlers if any(isinstance(f, RequestIdFilter) for f in h.filters)]
    if not ours:
        stderr = logging.StreamHandler(_CURRENT_STDERR)
        stderr.addFilter(RequestIdFilter())
        logger.addHandler(stderr)
        ours = [stderr]
    for handler in ours:
        handler.setFormatter(formatter_for(settings))


def logging_config(settings: Settings) -> dict[str, Any]:
    """The whole process's logging (`logging.config.dictConfig` schema), for uvicorn.

    uvicorn's server and error lines and every library's go through the same handler
    and format as the service's own. uvicorn's access log is not used (`catalog serve`
    turns it off): the service logs each request itself, with its route and user.
    """
    _skip_costly_record_fields()
    level = settings.log_level
    formatter = "catalog.logs.JsonFormatter" if settings.json_logs else "catalog.logs.TextFormatter"
    own = {"handlers": ["stderr"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"catalog": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "catalog",
                "filters": ["request_id"],
            }
        },
        "loggers": {
            "catalog": own,
            "uvicorn": own,
            "uvicorn.error": {"level": level},  # to "uvicorn"'s handler
            "uvicorn.access": own,
        },
        # Other libraries: warnings and errors only. Their debug lines can quote statement
        # parameters (aiosqlite does), which may be secrets.
        "root": {"handlers": ["stderr"], "level": max(level, "WARNING", key=_LEVELS.index)},
    }
