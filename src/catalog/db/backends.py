"""What differs between the databases Catalog runs on, decided once per engine.

A `Backend` is chosen from the URL when an engine is built (`backend_named`) and travels
with it (`Database.backend`, `UnitOfWork.backend`): everything above `db/` asks it, never a
dialect name. Differences in SQL spelling stay at compile time (`db/types.py`); what is
here is how statements are *run* and what the engine can do in one statement:

- `fetch`: how a precompiled statement runs outside any transaction (the raw asyncpg
  connection on PostgreSQL; an AUTOCOMMIT connection on SQLite);
- `autocommit_writes`: whether a single-statement write may run that way too (SQLite
  writers must queue for the one write lock, see `writer_queue`);
- `writable_ctes`: whether INSERT/UPDATE/DELETE can sit inside WITH, letting a write and
  its follow-ups be one statement;
- engine options and per-connection set-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import asyncpg
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import greenlet_spawn

from catalog.config import Settings
from catalog.db import observe
from catalog.db.compiled import CompiledQuery, Row
from catalog.db.types import unicode_lower

AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


class Backend:
    """The operations and capabilities that depend on the database engine."""

    name: ClassVar[str]
    autocommit_writes: ClassVar[bool]
    writable_ctes: ClassVar[bool]

    def engine_options(self, settings: Settings, *, asynchronous: bool) -> dict[str, Any]:
        """Keyword arguments for create_engine / create_async_engine."""
        # hide_parameters: statement parameters (password hashes, emails) never appear in
        # error messages, hence never in logs.
        return {
            "echo": settings.db_echo,
            "pool_pre_ping": settings.db_pool_pre_ping,
            "hide_parameters": True,
        }

    def configure(self, engine: Engine, settings: Settings) -> None:
        """Per-connection set-up, on the (sync face of the) engine."""

    async def fetch(
        self, engine: AsyncEngine, query: CompiledQuery, params: Mapping[str, Any]
    ) -> Sequence[Row]:
        """All rows of `query`, run on its own outside any transaction."""
        async with engine.connect() as connection:
            await connection.execution_options(**AUTOCOMMIT)
            result = await connection.execute(query.statement, dict(params))
            return result.mappings().all()

    def writer_queue(self) -> asyncio.Lock | None:
        """A lock writers of one process take in turn, where the database needs one."""
        return None


class PostgreSQL(Backend):
    """asyncpg for the API, psycopg for the CLI; statements run on the raw asyncpg connection."""

    name = "postgresql"
    autocommit_writes = True
    writable_ctes = True

    def engine_options(self, settings: Settings, *, asynchronous: bool) -> dict[str, Any]:
        options = super().engine_options(settings, asynchronous=asynchronous) | {
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout,
            "pool_recycle": settings.db_pool_recycle,
        }
        if asynchronous:
            # JIT compilation and parallel workers only slow the short statements an OLTP
            # API sends (a parallel plan for a filtered page measured 30x slower).
            options["connect_args"] = {
                "server_settings": {"jit": "off", "max_parallel_workers_per_gather": "0"}
            }
        return options

    async def fetch(
        self, engine: AsyncEngine, query: CompiledQuery, params: Mapping[str, Any]
    ) -> Sequence[Row]:
        # Straight on the pool's asyncpg connection: no BEGIN/COMMIT around one statement,
        # no result-processing layer, asyncpg's own prepared-statement cache. Parameters
        # must be driver-native values (int, str, bool, Decimal, aware datetime, list).
        compiled = query.compiled(engine.dialect)
        sql = compiled.sql
        pooled = await engine.raw_connection()
        driver: Any = pooled.driver_connection
        try:
            started = observe.now()
            try:
                records: Sequence[Row] = await driver.fetch(sql, *compiled.arguments(params))
            except BaseException as error:
                observe.report(self.name, sql, started, error)
                raise
            observe.report(self.name, sql, started)
        except asyncpg.IntegrityConstraintViolationError as error:
            # The exceptions the same statement raises through SQLAlchemy: callers see one
            # family of errors whichever way a statement ran. Parameters stay out of their
            # messages (as `hide_parameters` does for the engine): they may be secrets.
            raise IntegrityError(sql, params, error, hide_parameters=True) from error
        except asyncpg.PostgresError as error:
            raise DBAPIError(sql, params, error, hide_parameters=True) from error
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            # The pool cannot see errors raised past it: drop the broken connection.
            await greenlet_spawn(pooled.invalidate)
            raise
        finally:
            await greenlet_spawn(pooled.close)  # back to the pool
        return records


class SQLite(Backend):
    """aiosqlite for the API, sqlite3 for the CLI: one file, one writer at a time."""

    name = "sqlite"
    # A write outside the session would skip the writer queue and poll SQLite's lock.
    autocommit_writes = False
    # SQLite cannot put INSERT/UPDATE/DELETE in a WITH clause.
    writable_ctes = False

    def configure(self, engine: Engine, settings: Settings) -> None:
        busy_timeout_ms = int(settings.sqlite_busy_timeout_ms)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            # Take transaction control away from the driver; the "begin" hook below owns it.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            cursor.close()
            dbapi_connection.create_function("unicode_lower", 1, unicode_lower, deterministic=True)

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            # Write transactions take the lock up front, so concurrent writers queue
            # instead of failing with "database is locked" when they upgrade a read lock.
            if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    def writer_queue(self) -> asyncio.Lock | None:
        # Within one process, writers queue here, in the event loop, instead of polling
        # the file lock in SQLite's busy handler (which, with a dozen concurrent writers,
        # was seen to starve one past busy_timeout). Other processes: busy_timeout.
        return asyncio.Lock()


BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (PostgreSQL(), SQLite())}


def backend_of(bind: Connection | Engine) -> Backend:
    """The backend a sync connection or engine talks to."""
    return backend_named(bind.dialect.name)


def backend_named(name: str) -> Backend:
    """The backend for a SQLAlchemy backend name ("postgresql", "sqlite")."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"no backend for {name!r} (supported: {', '.join(BACKENDS)})") from None
