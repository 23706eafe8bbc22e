"""The unit of work: everything one request (or one command) does with the database.

Reads cost one round trip and no transaction: until something writes, a precompiled
statement runs on its own on a pooled connection (`Backend.fetch`). The first write that
needs a transaction opens one (`session()`); from then on every statement of the unit
runs inside it, so a read sees the unit's own writes. A write that is a single statement
is atomic by itself and skips the transaction where the backend allows (`write`).

Leaving the `async with` commits what was opened if the body succeeded and rolls it back
if it raised; the connection always goes back to the pool. The API enters one per request
in a dependency that leaves it when the endpoint returns (`api/deps.py`), so the commit
happens before the response is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.backends import Backend
from catalog.db.compiled import CompiledQuery, Row
from catalog.db.errors import is_unavailable
from catalog.db.replicas import ReplicaSet, parse_lsn
from catalog.hooks import lsn_ignored

_POSITION = CompiledQuery(text("SELECT pg_current_wal_lsn()::text AS position"))

if TYPE_CHECKING:
    from catalog.db.database import Database

T = TypeVar("T")


class UnitOfWork:
    """One unit of work; use as `async with database.unit_of_work() as uow:`."""

    __slots__ = (
        "_database",
        "_seen_vouched",
        "_session",
        "_turn_taken",
        "backend",
        "commit_position",
        "primary_only",
        "reads_only",
        "seen",
        "wrote",
    )

    def __init__(self, database: Database, *, reads_only: bool = False) -> None:
        self._database = database
        # A unit that only reads never holds a session or a writer turn, so it needs no
        # exit step; it refuses to write rather than leave a transaction open.
        self.reads_only = reads_only
        self.backend: Backend = database.backend
        self._session: AsyncSession | None = None
        self._turn_taken = False
        # Read replicas (db/replicas.py): the WAL position the client has seen, whether
        # every read must go to the primary (a write request), and, once the unit has
        # written and committed, the primary's position after that commit.
        self.seen: int | None = None
        self._seen_vouched = False  # `seen` checked against the primary's position
        self.primary_only = False
        self.wrote = False
        self.commit_position: int | None = None

    @property
    def in_transaction(self) -> bool:
        """Whether a write has opened the unit's transaction."""
        return self._session is not None

    async def session(self) -> AsyncSession:
        """The unit's write session; its transaction starts with the first statement.

        On SQLite this is also where the writer waits for its turn (`Backend.writer_queue`).
        """
        if self._session is None:
            self._check_writable()
            self.wrote = True
            queue = self._database.writer_queue
            if queue is not None:
                await queue.acquire()
                self._turn_taken = True
            self._session = self._database.sessions()
        return self._session

    async def fetch_all(self, query: CompiledQuery, **params: Any) -> Sequence[Row]:
        """All rows of a precompiled query: on its own, or inside the open transaction."""
        if self._session is None:
            replicas = self._database.replicas
            if replicas is not None and not self.primary_only:
                await self._vouch_seen(replicas)
                replica = replicas.choose(self.seen)
                if replica is not None:
                    try:
                        return await self.backend.fetch(replica, query, params, retry_lost=True)
                    except Exception as error:
                        if not is_unavailable(error):
                            raise
                        replicas.mark_down(replica)  # a read is safe to run on the primary
            engine = self._database.engine
            return await self.backend.fetch(engine, query, params, retry_lost=True)
        result = await self._execute(self._session, query, params)
        return result.mappings().all()

    async def _vouch_seen(self, replicas: ReplicaSet) -> None:
        """Check the client's WAL position against the primary's, once per unit."""
        if self.seen is not None and not self._seen_vouched:
            if not await replicas.vouch(self.seen):
                self.seen = None  # from the future: no write of ours answered it
                lsn_ignored.emit()
            self._seen_vouched = True

    async def fetch_one(self, query: CompiledQuery, **params: Any) -> Row | None:
        """As `fetch_all`, for a query returning at most one row."""
        rows = await self.fetch_all(query, **params)
        return rows[0] if rows else None

    async def fetch_beside(
        self,
        aside: CompiledQuery,
        aside_params: dict[str, Any],
        query: CompiledQuery,
        params: dict[str, Any],
    ) -> tuple[Sequence[Row], Sequence[Row]]:
        """The rows of two independent reads, `aside`'s first.

        Outside a transaction each read has a connection of its own, so they run at once
        and the caller waits for the slower (a list's capped count beside its page),
        while the pool has a connection to spare; otherwise, and in the unit's
        transaction, one after the other. An error of either is raised; if `query` fails
        or the caller is cancelled, the read aside is cancelled (its connection settles
        in the background, db/checkin.py).
        """
        replicas = self._database.replicas
        if replicas is not None and not self.primary_only:
            await self._vouch_seen(replicas)  # once, not by both reads at the same time
        if self._session is not None or not self._database.has_spare_connection():
            first = await self.fetch_all(aside, **aside_params)
            return first, await self.fetch_all(query, **params)
        beside = asyncio.ensure_future(self.fetch_all(aside, **aside_params))
        beside.add_done_callback(_retrieved)
        try:
            rows = await self.fetch_all(query, **params)
            return await beside, rows
        except BaseException:
            beside.cancel()
            await asyncio.wait({beside})
            raise

    async def write(self, query: CompiledQuery, **params: Any) -> Row | None:
        """Run a write that is one statement; its first RETURNING row, if any.

        Atomic on its own, it runs outside any transaction where the backend allows;
        otherwise (SQLite, or a transaction already open) inside the unit's transaction.
        """
        self._check_writable()
        self.wrote = True
        if self._session is None and self.backend.autocommit_writes:
            rows = await self.backend.fetch(self._database.engine, query, params, writes=True)
            return rows[0] if rows else None
        result = await self._execute(await self.session(), query, params)
        return result.mappings().first() if result.returns_rows else None

    @staticmethod
    async def _execute(
        session: AsyncSession, query: CompiledQuery, params: dict[str, Any]
    ) -> CursorResult[Any]:
        # Core statements on the session's connection: its transaction, without the ORM.
        connection = await session.connection()
        return await connection.execute(query.statement, params)

    def strategy(self, factory: Callable[[Backend], T]) -> T:
        """The database's strategy built by `factory` for this backend (made once)."""
        return self._database.strategy(factory)

    async def commit(self) -> None:
        """Commit the open transaction, if any (a later write opens a new one).

        A commit under way is never abandoned half-sent: if the caller is cancelled (its
        client left, its deadline passed) the commit still finishes, then the
        cancellation goes on.
        """
        if self._session is None:
            return
        commit = asyncio.ensure_future(self._session.commit())
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await commit
            raise

    async def close(self, error: BaseException | None = None) -> None:
        """Roll back after `error` (or anything uncommitted), release the connection."""
        session, self._session = self._session, None
        try:
            if session is not None:
                await self._end(session, error)
        finally:
            if self._turn_taken:
                self._turn_taken = False
                queue = self._database.writer_queue
                assert queue is not None
                queue.release()

    @staticmethod
    async def _end(session: AsyncSession, error: BaseException | None) -> None:
        if error is None:
            await session.close()  # rolls back whatever was not committed
            return
        # Already failing: a connection that is gone cannot roll back, and closing discards
        # it; the error that matters is `error`, not one from the cleanup.
        with contextlib.suppress(Exception):
            await session.rollback()
        with contextlib.suppress(Exception):
            await session.close()

    def _check_writable(self) -> None:
        if self.reads_only:
            raise RuntimeError("this unit of work only reads: a write needs a writing one")

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            try:
                await self.commit()
            except BaseException as commit_error:
                await self.close(commit_error)
                raise
        await self.close(error)
        if error is None and self.wrote and self._database.replicas is not None:
            self.commit_position = await self._primary_position()

    async def _primary_position(self) -> int | None:
        """The primary's WAL position now, past this unit's commit (None if unknown)."""
        try:
            row = await self.backend.fetch(self._database.engine, _POSITION, {})
        except Exception:  # committed already: a missing position only costs freshness
            return None
        return parse_lsn(row[0]["position"]) if row else None


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a task's error as seen: the caller raises its own error, or this one."""
    if not task.cancelled():
        task.exception()
