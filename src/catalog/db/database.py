"""The database handles: `Database` (async, one per application) and `SyncDatabase` (CLI).

A `Database` owns the async engine, the `Backend` chosen for it, the session factory and,
where the backend needs one, the queue its writers take turns in. Requests and commands
reach it through a `UnitOfWork` (`database.unit_of_work()`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from catalog.config import Settings
from catalog.db.backends import AUTOCOMMIT, Backend, backend_named
from catalog.db.engine import create_async_db_engine, create_sync_engine
from catalog.db.observe import WaitCountingPool
from catalog.db.replicas import Replica, ReplicaSet
from catalog.db.unit_of_work import UnitOfWork

T = TypeVar("T")


class Database:
    """The async engine, its backend and session factory: one per application instance."""

    def __init__(self, engine: AsyncEngine, replicas: ReplicaSet | None = None) -> None:
        self.engine = engine
        self.replicas = replicas
        self.backend: Backend = backend_named(engine.dialect.name)
        self.writer_queue = self.backend.writer_queue()
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._strategies: dict[Callable[[Backend], Any], Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_async_db_engine(settings)
        replicas = None
        if settings.database_replica_urls:
            replicas = ReplicaSet(
                primary=engine,
                replicas=[
                    Replica(create_async_db_engine(settings, url), name=f"#{number}")
                    for number, url in enumerate(settings.database_replica_urls, 1)
                ],
                max_lag=settings.replica_max_lag_seconds,
            )
        return cls(engine, replicas)

    def start(self) -> None:
        """Start what runs in the background (the replica poller): once per worker."""
        if self.replicas is not None:
            self.replicas.start()

    async def stop(self) -> None:
        """Stop what `start` started (the engines stay usable)."""
        if self.replicas is not None:
            await self.replicas.stop()

    def has_spare_connection(self) -> bool:
        """Whether a request may take a second connection now (two reads at once) without
        making others wait for one."""
        pool = self.engine.pool
        return not isinstance(pool, WaitCountingPool) or pool.can_lend(2)

    def unit_of_work(self, *, reads_only: bool = False) -> UnitOfWork:
        """A new unit of work (`async with`): reads, writes, one commit at the end. One
        that `reads_only` refuses writes and needs no `async with`: it has nothing to end."""
        return UnitOfWork(self, reads_only=reads_only)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write session in a unit of work of its own: committed if the body succeeds."""
        async with self.unit_of_work() as uow:
            yield await uow.session()

    @asynccontextmanager
    async def autocommit_session(self) -> AsyncIterator[AsyncSession]:
        """A session whose statements each commit on their own (no transaction)."""
        async with self.read_session() as session:
            yield session

    def read_session(self, **options: Any) -> AsyncSession:
        """A new ORM session for reads (`async with`): each statement runs on its own, so it
        takes no write lock on SQLite and costs no BEGIN/ROLLBACK round trips."""
        return AsyncSession(self.engine.execution_options(**AUTOCOMMIT), **options)

    def strategy(self, factory: Callable[[Backend], T]) -> T:
        """What `factory` builds for this database's backend, built on first use only.

        This is how a service picks its per-backend implementation once, where the
        database handle lives, instead of testing the backend on every call.
        """
        found = self._strategies.get(factory)
        if found is None:
            found = self._strategies[factory] = factory(self.backend)
        return cast(T, found)

    async def dispose(self) -> None:
        await self.stop()
        if self.replicas is not None:
            for replica in self.replicas.replicas:
                await replica.engine.dispose()
        await self.engine.dispose()


class SyncDatabase:
    """The sync engine and a session factory, for the CLI's bulk and admin work."""

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

    def dispose(self) -> None:
        self.engine.dispose()
