"""Returning a raw asyncpg connection to SQLAlchemy's pool, whatever cancels the caller.

`give_back` is the happy path, done in the caller's task unless checking in has to wait;
`after_cancellation` the path of a statement cut off mid-exchange (the server must end that
exchange before the connection may serve anyone else, PgBouncer's transaction mode above all).
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

from sqlalchemy.util import greenlet_spawn


async def give_back(pooled: Any) -> None:
    """Return a pooled connection to the pool, even if the caller is cancelled meanwhile.

    Checking in usually awaits nothing (no transaction to roll back): then it is done here,
    in this task. Only when it does wait is the rest shielded in a task of its own, which a
    cancellation cannot interrupt (a task per statement costs a sixth of a short request).
    """
    closing = greenlet_spawn(pooled.close)
    try:
        waiting_on = closing.send(None)
    except StopIteration:
        return

    async def rest() -> None:
        await _resumed(closing, waiting_on)

    await asyncio.shield(rest())


@types.coroutine
def _resumed(coroutine: Any, waiting_on: Any) -> Any:
    """Go on running a coroutine that was stepped by hand and is waiting on `waiting_on`."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as error:  # thrown in by the task (a cancellation)
            try:
                waiting_on = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


CANCEL_WAIT_SECONDS = 5.0  # for the server to end a cut-off exchange, before dropping it
CANCEL_DELIVERY_SECONDS = 0.5  # what a cancelled request waits for that, at most
_settling: set[asyncio.Task[None]] = set()  # strong references to the tasks below


def after_cancellation(pooled: Any, driver: Any) -> asyncio.Task[None]:
    """Return a connection to the pool once the exchange its statement was cut off in has
    ended on the server too; discard it if that does not happen soon."""

    async def settle() -> None:
        try:
            usable = await _exchange_ended(driver)
        except BaseException:
            pooled.invalidate()  # never back in the pool half-settled
            raise
        if not usable:
            pooled.invalidate()
        await greenlet_spawn(pooled.close)

    task = asyncio.get_running_loop().create_task(settle())
    _settling.add(task)
    task.add_done_callback(_settling.discard)
    return task


async def _exchange_ended(driver: Any) -> bool:
    """Whether the server has finished the protocol exchange a cancelled statement was in
    (waiting for that CANCEL_WAIT_SECONDS at most); False if the connection is unusable."""
    # asyncpg keeps its in-flight CancelRequests in `_cancellations` (no public API).
    pending = [t for t in getattr(driver, "_cancellations", ()) if not t.done()]
    if pending:
        # Cut off while the server worked: done once it has acknowledged the cancellation.
        await asyncio.wait(pending, timeout=CANCEL_WAIT_SECONDS)
        return all(t.done() for t in pending) and not driver.is_closed()
    if driver.is_closed():
        return False
    # Cut off with nothing in flight, which may be between asyncpg's two steps: its prepare
    # (Parse, Describe and Flush, no Sync) answered, Bind/Execute/Sync never sent. The
    # server then waits for the rest ('active', ClientRead), in an implicit transaction
    # holding the statement's locks, and PgBouncer in transaction mode keeps that server
    # connection tied to this client (idle in the pool) until the exchange ends. Any
    # simple query ends it (a cancellation is rare: no cost on the happy path).
    try:
        await driver.execute("SELECT 1", timeout=CANCEL_WAIT_SECONDS)
    except Exception:
        return False
    return True
