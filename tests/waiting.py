"""Waiting for an observable state instead of sleeping: bounded, and a failure on timeout.

A test that needs "the other request is now waiting for the lock" polls for that state
(pg_locks, pg_stat_activity, a pool's waiter count...) and fails when it never comes, so
a slow machine makes the test slower, never vacuous.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

T = TypeVar("T")
INTERVAL = 0.02
TIMEOUT = 30.0


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, what: str, within: float = TIMEOUT
) -> T:
    """Await `check()` until it returns something truthy (returned); fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"never reached within {within:.0f} s: {what}", pytrace=False)
        await asyncio.sleep(INTERVAL)


def eventually_sync(check: Callable[[], T | None], *, what: str, within: float = TIMEOUT) -> T:
    """`eventually` for synchronous code."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"never reached within {within:.0f} s: {what}", pytrace=False)
        time.sleep(INTERVAL)


# Backends of this database that wait for a lock (heavyweight or advisory), and what they run.
LOCK_WAITERS = text(
    "SELECT a.pid, a.query FROM pg_stat_activity a "
    "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() "
    "AND a.wait_event_type = 'Lock'"
)


def lock_waiters(connection: Any) -> list[tuple[int, str]]:
    """(pid, query) of the other backends of this database waiting for a lock (sync)."""
    return [(row[0], row[1]) for row in connection.execute(LOCK_WAITERS).all()]
