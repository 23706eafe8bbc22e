"""Checking raw connections back in (`db/checkin.py`): in the caller's task when nothing
waits, shielded when something does, and after a cancellation only once the server ended
the exchange. Fakes stand in for the pool entry and asyncpg where the timing must be
controlled; one test uses the real pool and asyncpg."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.util import await_only, greenlet_spawn

from catalog.db import checkin
from catalog.db.checkin import after_cancellation, give_back
from catalog.db.database import Database
from tests.conftest import postgresql_only


class Boom(Exception):
    """Raised by a fake's close."""


class FakePooled:
    """A pool entry whose `close` (sync, run under greenlet_spawn as SQLAlchemy's is)
    records where it ran, awaits what it is given in turn, and may raise."""

    def __init__(
        self,
        *waits: Callable[[], Awaitable[Any]],
        raise_before: bool = False,
        raise_after: bool = False,
        on_cancel: Callable[[], Awaitable[Any] | None] | None = None,
    ) -> None:
        self.waits = waits
        self.raise_before = raise_before
        self.raise_after = raise_after
        self.on_cancel = on_cancel  # run (and awaited) when a wait is cancelled, then return
        self.events: list[str] = []
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.received: list[Any] = []

    def close(self) -> str:
        self.tasks.append(asyncio.current_task())
        if self.raise_before:
            raise Boom("before waiting")
        for wait in self.waits:
            try:
                self.received.append(await_only(wait()))
            except asyncio.CancelledError:
                self.events.append("close saw a cancellation")
                if self.on_cancel is None:
                    raise
                cleanup = self.on_cancel()
                if cleanup is not None:
                    await_only(cleanup)
                self.events.append("closed after the cancellation")
                return "cleaned up"
            self.tasks.append(asyncio.current_task())
        if self.raise_after:
            raise Boom("after waiting")
        self.events.append("closed")
        return "closed"

    def invalidate(self, error: BaseException | None = None) -> None:
        self.events.append("invalidated")


async def until(condition: Callable[[], bool], steps: int = 100) -> None:
    """Let the loop run until `condition` holds (a bounded number of steps)."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


# --- give_back: the happy path ----------------------------------------------------------------


async def test_a_checkin_that_waits_for_nothing_runs_in_the_callers_task() -> None:
    pooled = FakePooled()
    tasks_before = asyncio.all_tasks()
    await give_back(pooled)
    assert pooled.events == ["closed"]
    # No task of its own (asyncio.shield would run close in a new one).
    assert pooled.tasks == [asyncio.current_task()]
    assert asyncio.all_tasks() == tasks_before


async def test_a_checkin_that_waits_is_finished_when_give_back_returns() -> None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, answer.set_result, "rolled back")
    # Two waits: a bare yield (asyncio.sleep(0)), then a future with a result.
    pooled = FakePooled(lambda: asyncio.sleep(0, "slept"), lambda: answer)
    await give_back(pooled)
    assert pooled.events == ["closed"]
    assert pooled.received == ["slept", "rolled back"]  # each wait got its own result
    # Started here; resumed after its first wait in the shielded task, not in ours.
    assert pooled.tasks[0] is asyncio.current_task()
    assert all(task is not asyncio.current_task() for task in pooled.tasks[1:])


async def test_a_cancelled_caller_still_checks_the_connection_in() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    pooled = FakePooled(lambda: gate)
    caller = asyncio.create_task(give_back(pooled))
    await until(lambda: bool(pooled.tasks))  # close is waiting on the gate
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert pooled.events == []  # the caller is gone; the check-in is still waiting
    gate.set_result(None)
    await until(lambda: bool(pooled.events))
    # The cancellation never reached close: it went on and finished.
    assert pooled.events == ["closed"]


@pytest.mark.parametrize(
    "pooled",
    [
        pytest.param(lambda: FakePooled(raise_before=True), id="before-waiting"),
        pytest.param(lambda: FakePooled(lambda: asyncio.sleep(0), raise_after=True), id="after"),
    ],
)
async def test_an_error_in_close_reaches_the_caller(pooled: Callable[[], FakePooled]) -> None:
    with pytest.raises(Boom):
        await give_back(pooled())


# --- the hand-stepped coroutine, resumed in a task --------------------------------------------


async def resumed_in_a_task(pooled: FakePooled) -> asyncio.Task[Any]:
    """Step `pooled.close` by hand to its first wait, then resume it in a task of its own
    (what give_back shields)."""
    closing = greenlet_spawn(pooled.close)
    waiting_on = closing.send(None)

    async def rest() -> Any:
        return await checkin._resumed(closing, waiting_on)

    task = asyncio.create_task(rest())
    await asyncio.sleep(0)
    return task


@pytest.mark.parametrize(
    "cleanup",
    [
        pytest.param(lambda: asyncio.sleep(0.01), id="waiting"),
        pytest.param(lambda: None, id="at-once"),
    ],
)
async def test_a_cancellation_of_the_resumed_checkin_is_thrown_into_it(
    cleanup: Callable[[], Awaitable[Any] | None],
) -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # close catches the cancellation, cleans up (waiting or not) and returns.
    pooled = FakePooled(lambda: gate, on_cancel=cleanup)
    task = await resumed_in_a_task(pooled)
    task.cancel()
    assert await task == "cleaned up"  # close's own return value, after its clean-up
    assert pooled.events == ["close saw a cancellation", "closed after the cancellation"]


async def test_a_cancellation_the_checkin_does_not_catch_cancels_the_task() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pooled = FakePooled(lambda: gate)
    task = await resumed_in_a_task(pooled)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pooled.events == ["close saw a cancellation"]


# --- after_cancellation -----------------------------------------------------------------------


class FakeDriver:
    """What `_exchange_ended` reads of an asyncpg connection."""

    def __init__(
        self,
        *cancellations: asyncio.Future[Any],
        closed: bool = False,
        select_fails: bool = False,
    ) -> None:
        self._cancellations = set(cancellations)  # asyncpg's in-flight CancelRequests
        self.closed = closed
        self.select_fails = select_fails
        self.statements: list[tuple[str, float | None]] = []

    def is_closed(self) -> bool:
        return self.closed

    async def execute(self, sql: str, timeout: float | None = None) -> str:  # noqa: ASYNC109 (asyncpg's signature)
        self.statements.append((sql, timeout))
        if self.select_fails:
            raise ConnectionResetError("gone")
        return "SELECT 1"


async def test_a_connection_cut_off_between_steps_is_ended_by_a_query_then_checked_in() -> None:
    pooled, driver = FakePooled(), FakeDriver()
    task = after_cancellation(pooled, driver)
    assert task in checkin._settling  # kept alive while it settles
    await task
    assert driver.statements == [("SELECT 1", checkin.CANCEL_WAIT_SECONDS)]
    assert pooled.events == ["closed"]  # back in the pool, not invalidated
    assert task not in checkin._settling


async def test_an_answered_cancel_request_is_an_earlier_exchanges() -> None:
    answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    answered.set_result(None)
    pooled, driver = FakePooled(), FakeDriver(answered)
    await after_cancellation(pooled, driver)
    # Nothing in flight: this exchange may still be open, and a query ends it.
    assert driver.statements == [("SELECT 1", checkin.CANCEL_WAIT_SECONDS)]
    assert pooled.events == ["closed"]


async def test_a_connection_whose_query_fails_is_discarded() -> None:
    pooled, driver = FakePooled(), FakeDriver(select_fails=True)
    await after_cancellation(pooled, driver)
    assert pooled.events == ["invalidated", "closed"]


async def test_a_closed_connection_is_discarded_without_a_query() -> None:
    pooled, driver = FakePooled(), FakeDriver(closed=True)
    await after_cancellation(pooled, driver)
    assert driver.statements == []
    assert pooled.events == ["invalidated", "closed"]


async def test_a_connection_is_checked_in_only_once_its_cancel_request_is_answered() -> None:
    cancel_request: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pooled, driver = FakePooled(), FakeDriver(cancel_request)
    task = after_cancellation(pooled, driver)
    for _ in range(10):
        await asyncio.sleep(0)
    assert pooled.events == []  # still waiting for the server
    cancel_request.set_result(None)
    await task
    assert pooled.events == ["closed"]
    assert driver.statements == []  # the server ended the exchange itself


@pytest.mark.parametrize("closed_meanwhile", [False, True], ids=["unanswered", "then-closed"])
async def test_a_connection_whose_cancel_request_fails_is_discarded(
    monkeypatch: pytest.MonkeyPatch, closed_meanwhile: bool
) -> None:
    monkeypatch.setattr(checkin, "CANCEL_WAIT_SECONDS", 0.02)
    cancel_request: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pooled, driver = FakePooled(), FakeDriver(cancel_request)
    if closed_meanwhile:  # answered, but the connection broke meanwhile

        def answer() -> None:
            driver.closed = True
            cancel_request.set_result(None)

        asyncio.get_running_loop().call_later(0.005, answer)  # while it waits
    async with asyncio.timeout(5):  # the wait is bounded: never hangs
        await after_cancellation(pooled, driver)
    assert pooled.events == ["invalidated", "closed"]


async def test_settling_cut_off_itself_discards_the_connection() -> None:
    cancel_request: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pooled, driver = FakePooled(), FakeDriver(cancel_request)
    task = after_cancellation(pooled, driver)
    await asyncio.sleep(0)
    task.cancel()  # e.g. the loop shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pooled.events == ["invalidated"]  # never back in the pool half-settled
    assert task not in checkin._settling


# --- on the real pool and asyncpg -------------------------------------------------------------


@postgresql_only
async def test_a_cancelled_caller_returns_a_real_connection_rolled_back(
    database: Database,
) -> None:
    """A connection left in a transaction makes the pool's reset await a ROLLBACK: the
    caller cut off meanwhile, the connection still goes back, rolled back."""
    pool: Any = database.engine.pool
    pooled = await database.engine.raw_connection()
    driver: Any = pooled.driver_connection
    await greenlet_spawn(lambda: pooled.cursor().execute("SELECT 1"))  # opens a transaction
    assert driver.is_in_transaction()
    checked_in = pool.checkedin()
    caller = asyncio.create_task(give_back(pooled))
    await asyncio.sleep(0)  # the ROLLBACK is sent; its answer is awaited
    assert not caller.done()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(200):
        if pool.checkedin() > checked_in:
            break
        await asyncio.sleep(0.005)
    assert pool.checkedin() == checked_in + 1
    assert not driver.is_in_transaction()
    assert not driver.is_closed()
