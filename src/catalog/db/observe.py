"""Where the database layer can be watched: every statement, and the pool's waiters.

One hook, `statement_executed`, reports every statement the API's engine runs, by
either path: the raw asyncpg connection (`Backend.fetch`, which calls `report`) and
SQLAlchemy's own execution (engine events, attached by `observe_engine`). Metrics and
tracing subscribe to it; nothing here knows about them. With no subscriber the cost is
one truth test per statement.

Times are `time.perf_counter_ns()` readings taken around the driver call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from catalog.hooks import Hook

# (backend name, SQL text, started, ended, error or None). Parameters are never passed:
# they may hold secrets (password hashes, emails).
statement_executed: Hook[[str, str, int, int, BaseException | None]] = Hook("statement_executed")
_STARTED = "catalog.statement_started"

now = time.perf_counter_ns


def report(backend: str, sql: str, started: int, error: BaseException | None = None) -> None:
    """Report a statement that started at `started` and ends now (if anyone listens)."""
    if statement_executed:
        statement_executed.emit(backend, sql, started, now(), error)


def observe_engine(engine: AsyncEngine) -> None:
    """Report the statements SQLAlchemy runs on `engine` (the raw path reports itself)."""
    sync_engine = engine.sync_engine
    backend = sync_engine.dialect.name

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement_executed:
            conn.info[_STARTED] = now()

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info.pop(_STARTED, None)
        if started is not None:
            report(backend, statement, started)

    @event.listens_for(sync_engine, "handle_error")
    def _failed(context: ExceptionContext) -> None:
        conn = context.connection
        started = conn.info.pop(_STARTED, None) if conn is not None else None
        if started is not None and context.statement is not None:
            report(backend, context.statement, started, context.original_exception)


# SQLAlchemy names a pool's logger after its class: keep this one as quiet as its own
# ("sqlalchemy.pool" logs warnings only) even when the "catalog" loggers say INFO.
logging.getLogger(f"{__name__}.WaitCountingPool").setLevel(logging.WARNING)


class WaitCountingPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async queue pool, counting the checkouts still waiting.

    A checkout waits while the pool is exhausted (queued) or a new connection is being
    opened. Read by the metrics at scrape time; costs two integer updates per checkout.
    """

    waiting = 0

    def can_lend(self, count: int) -> bool:
        """Whether `count` more connections can be lent now, none queueing behind others."""
        if self.waiting:
            return False
        overflow = self._max_overflow
        return overflow < 0 or self.checkedout() + count <= self.size() + overflow

    def _do_get(self) -> Any:
        self.waiting += 1
        try:
            return super()._do_get()
        finally:
            self.waiting -= 1
