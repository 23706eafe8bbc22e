"""Structured logs in-process: the access line, JSON or text, the request id everywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from catalog.api.app import create_app
from catalog.api.middleware.observed import ObservedRequestsMiddleware
from catalog.config import Settings
from catalog.db.database import Database
from catalog.logs import RequestIdFilter, configure_logging
from tests.conftest import Account, make_settings
from tests.telemetry import running


@contextmanager
def catalog_logger_restored() -> Iterator[None]:
    """Put the process-wide "catalog" logger back as it was before the block: `create_app`
    reconfigures it (handlers, their format, level, propagation) for every later test."""
    logger = logging.getLogger("catalog")
    handlers = [(handler, handler.formatter) for handler in logger.handlers]
    level, propagate = logger.level, logger.propagate
    record_fields = logging.logThreads, logging.logMultiprocessing
    try:
        yield
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler, formatter in handlers:
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        logging.logThreads, logging.logMultiprocessing = record_fields


@pytest.fixture
def catalog_log() -> Iterator[io.StringIO]:
    """What the "catalog" loggers' handler writes during the test."""
    with catalog_logger_restored():
        configure_logging(make_settings("sqlite:///unused.db"))  # the handler exists
        [handler] = [
            h
            for h in logging.getLogger("catalog").handlers
            if isinstance(h, logging.StreamHandler)
            and any(isinstance(f, RequestIdFilter) for f in h.filters)
        ]
        previous = handler.setStream(stream := io.StringIO())
        try:
            yield stream
        finally:
            handler.setStream(previous)


def test_the_catalog_logger_is_put_back_as_it_was_not_to_defaults() -> None:
    logger = logging.getLogger("catalog")
    with catalog_logger_restored():  # undoes this test's own arrangement
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        mine = logging.NullHandler()
        mine.setFormatter(formatter := logging.Formatter("%(message)s"))
        logger.addHandler(mine)
        logger.setLevel(logging.ERROR)
        logger.propagate = True

        with catalog_logger_restored():
            create_app(make_settings("sqlite:///unused.db", log_format="json", log_level="DEBUG"))
            assert (logger.level, logger.propagate) == (logging.DEBUG, False)  # it did change

        assert (logger.handlers, logger.level, logger.propagate) == ([mine], logging.ERROR, True)
        assert mine.formatter is formatter


def app_with_a_chatty_route(settings: Settings, database: Database, **overrides: object) -> FastAPI:
    app = create_app(make_settings(settings.database_url, **overrides), database)

    @app.get("/test-chatty/{word}")
    async def chatty(word: str) -> dict[str, str]:
        logging.getLogger("catalog.test").warning("said %s", word)
        return {"said": word}

    return app


async def test_json_lines_carry_the_request_fields_and_its_id(
    settings: Settings, database: Database, user: Account, catalog_log: io.StringIO
) -> None:
    app = app_with_a_chatty_route(settings, database, log_format="json")
    async with running(app) as client:
        mine = await client.get("/users/me", headers=user.headers | {"X-Request-ID": "req-me"})
        chatty = await client.get("/test-chatty/hello", headers={"X-Request-ID": "req-chatty"})
        missing = await client.get("/items/123456")
    assert (mine.status_code, chatty.status_code, missing.status_code) == (200, 200, 404)

    lines = [json.loads(line) for line in catalog_log.getvalue().splitlines()]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id", "pid"} <= line.keys()
        by_id.setdefault(line["request_id"], []).append(line)
    [access] = by_id["req-me"]
    assert access | {"time": "-", "duration_ms": "-", "pid": "-"} == {
        "time": "-",
        "level": "INFO",
        "logger": "catalog.access",
        "message": "GET /users/me 200",
        "request_id": "req-me",
        "pid": "-",
        "method": "GET",
        "route": "/users/me",
        "status": 200,
        "duration_ms": "-",
        "user_id": user.id,
        "client": "127.0.0.1",
    }
    assert access["time"].endswith("Z")
    assert access["duration_ms"] > 0
    # Anything logged while serving a request carries its id; anonymous: no user.
    said, access = by_id["req-chatty"]
    assert (said["logger"], said["level"], said["message"]) == (
        "catalog.test",
        "WARNING",
        "said hello",
    )
    assert (access["route"], access["user_id"]) == ("/test-chatty/{word}", None)
    [access] = [line for line in lines if line["request_id"] == missing.headers["X-Request-ID"]]
    assert (access["route"], access["status"]) == ("/items/{item_id}", 404)


async def test_text_lines_are_one_per_request_with_the_same_fields(
    settings: Settings, database: Database, user: Account, catalog_log: io.StringIO
) -> None:
    async with running(create_app(settings, database)) as client:
        await client.get("/users/me", headers=user.headers | {"X-Request-ID": "req-text"})
    [line] = catalog_log.getvalue().splitlines()
    assert " INFO catalog.access [req-text] GET /users/me 200 duration_ms=" in line
    assert line.endswith(f" user_id={user.id} client=127.0.0.1")


async def test_access_log_off_logs_no_request(
    settings: Settings, database: Database, catalog_log: io.StringIO
) -> None:
    app = create_app(make_settings(settings.database_url, access_log=False), database)
    async with running(app) as client:
        assert (await client.get("/health")).status_code == 200
    assert catalog_log.getvalue() == ""
    # With neither metrics nor an access log there is nothing to observe: no middleware.
    installed: list[object] = [m.cls for m in app.user_middleware]
    assert ObservedRequestsMiddleware not in installed
