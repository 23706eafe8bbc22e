"""Units of work: one session per request or task; commit on success, roll back on error.

The API has two kinds of session. A *write* session runs one transaction that the request
dependency commits before the response is sent. A *read* session runs on an AUTOCOMMIT
connection: a single SELECT needs no BEGIN/ROLLBACK round trips around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from catalog.config import Settings
from catalog.db.compiled import CompiledQuery, Row, fetch_all
from catalog.db.engine import READ_ONLY, create_async_db_engine, create_sync_engine


@dataclass
class Database:
    """The async engine and its session factories: one per application instance."""

    engine: AsyncEngine
    backend: str = field(init=False)
    write_sessions: async_sessionmaker[AsyncSession] = field(init=False)
    read_sessions: async_sessionmaker[AsyncSession] = field(init=False)
    # SQLite has one writer at a time. Within this process, writers queue here, in the
    # event loop, instead of polling the file lock in SQLite's busy handler (which, with
    # a dozen concurrent writers, was seen to starve one past busy_timeout). Writers in
    # other processes are still covered by busy_timeout.
    _sqlite_writer: asyncio.Lock | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.backend = self.engine.dialect.name
        if self.backend == "sqlite":
            self._sqlite_writer = asyncio.Lock()
        self.write_sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, autoflush=False
        )
        self.read_sessions = async_sessionmaker(
            self.engine.execution_options(**READ_ONLY), expire_on_commit=False, autoflush=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(create_async_db_engine(settings))

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """Yield a session; commit if the body succeeds, roll back if it raises."""
        async with self._writer_turn(), self.write_sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        if self._sqlite_writer is None:
            yield
            return
        async with self._sqlite_writer:
            yield

    @asynccontextmanager
    async def read_only(self) -> AsyncIterator[AsyncSession]:
        """Yield a session on an autocommit connection, for requests that only read."""
        async with self.read_sessions() as session:
            yield session

    async def fetch_all(self, query: CompiledQuery, **params: Any) -> Sequence[Row]:
        """Run a precompiled read query outside any transaction; all rows."""
        return await fetch_all(self.engine, query, params)

    async def fetch_one(self, query: CompiledQuery, **params: Any) -> Row | None:
        """As `fetch_all`, for a query returning at most one row."""
        rows = await fetch_all(self.engine, query, params)
        return rows[0] if rows else None

    async def dispose(self) -> None:
        await self.engine.dispose()


class SyncDatabase:
    """The sync engine and a session factory, for the CLI and admin code."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncDatabase:
        return cls(create_sync_engine(settings))

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A transactional scope: commit on success, roll back on any exception, close."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def get_db(self) -> Generator[Session, None, None]:
        """Generator form of `session_scope`, for dependency-injection style callers."""
        with self.session_scope() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """One-off sync unit of work against the configured database (engine disposed after)."""
    from catalog.config import get_settings

    database = SyncDatabase.from_settings(settings or get_settings())
    try:
        with database.session_scope() as session:
            yield session
    finally:
        database.dispose()
