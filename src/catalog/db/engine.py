"""Engines built from settings: async for the API, sync for the CLI and migrations.

Both come from the one DATABASE_URL; what each backend needs (pool sizes, SQLite pragmas,
PostgreSQL session settings) comes from its `Backend`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from catalog.config import Settings
from catalog.db.backends import Backend, backend_named
from catalog.db.observe import WaitCountingPool, observe_engine
from catalog.db.urls import resolve_urls


def backend_for(settings: Settings) -> Backend:
    """The backend DATABASE_URL names."""
    return backend_named(resolve_urls(settings.database_url).backend)


def create_sync_engine(settings: Settings) -> Engine:
    """The sync engine (psycopg / sqlite3) for the CLI, admin tasks and migrations."""
    backend = backend_for(settings)
    engine = create_engine(
        resolve_urls(settings.database_url).sync_url,
        **backend.engine_options(settings, asynchronous=False),
    )
    backend.configure(engine, settings)
    return engine


T = TypeVar("T")


def read_once(settings: Settings, read: Callable[[Connection], T]) -> T:
    """`read(connection)` on a connection of its own, outside any transaction.

    For the CLI's checks around a migration (which revision, an unfinished restore): on
    SQLite a transaction would queue for the write lock, which another instance's
    migration may hold for longer than the busy timeout.
    """
    engine = create_sync_engine(settings)
    try:
        with engine.connect() as connection:
            return read(connection.execution_options(isolation_level="AUTOCOMMIT"))
    finally:
        engine.dispose()


def create_async_db_engine(settings: Settings, database_url: str | None = None) -> AsyncEngine:
    """The async engine (asyncpg / aiosqlite) the API runs on: DATABASE_URL's, or
    `database_url`'s (a replica) with the same options."""
    backend = backend_for(settings)
    engine = create_async_engine(
        resolve_urls(database_url or settings.database_url).async_url,
        poolclass=WaitCountingPool,  # the default pool class, plus a count of waiters
        **backend.engine_options(settings, asynchronous=True),
    )
    backend.configure(engine.sync_engine, settings)
    observe_engine(engine)
    return engine
