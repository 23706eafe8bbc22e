"""RETRY_AFTER_SECONDS and DB_CONNECT_TIMEOUT at non-default values, over HTTP.

tests/api/test_outages.py covers outages at the defaults; here each setting is changed, so
an app that ignored it would answer differently.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from catalog.api.app import create_app
from catalog.db.database import Database
from tests.api import asgi_client
from tests.conftest import make_settings

UNOPENABLE = "sqlite:////nonexistent-directory/catalog/catalog.db"


async def test_a_503_carries_the_configured_retry_after() -> None:
    settings = make_settings(UNOPENABLE, retry_after_seconds=7)  # the default is 2
    database = Database.from_settings(settings)
    try:
        async with asgi_client(create_app(settings, database)) as client:
            response = await client.get("/items")
    finally:
        await database.dispose()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "7"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word,
    like a PostgreSQL server that hangs; yields the port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def test_a_connection_attempt_ends_after_the_configured_timeout(silent_server: int) -> None:
    url = f"postgresql://nobody@127.0.0.1:{silent_server}/catalog"
    settings = make_settings(url, db_connect_timeout=0.5)  # the default is 3 s
    database = Database.from_settings(settings)
    try:
        async with asgi_client(create_app(settings, database)) as client:
            started = time.monotonic()
            response = await client.get("/items")
            took = time.monotonic() - started
    finally:
        await database.dispose()
    assert response.status_code == 503, response.text
    # Bounded by the setting: the default alone would take 3 s or more.
    assert took < 2.5, took
