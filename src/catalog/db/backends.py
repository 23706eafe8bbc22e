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
- what the planner cannot do, which list statements work around: `indexes_place_nulls`
  (an index can give NULLs where a sort puts them), `value_statistics` (the planner knows
  how many rows a range holds), `name_trigram_table` (`q` has the trigram table of
  `db/name_search.py` to find candidates in, through a probe), `links_by_price` (each
  tag's links are indexed by their item's price, `models.tag_links`);
- engine options and per-connection set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import asyncpg
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

from catalog.config import Settings
from catalog.db import observe
from catalog.db.checkin import CANCEL_DELIVERY_SECONDS, after_cancellation, give_back
from catalog.db.compiled import CompiledQuery, Row
from catalog.db.errors import (
    CONNECTION_LOST,
    DatabaseUnavailableError,
    closed_by_server,
    is_unavailable,
    refused_as_standby,
)
from catalog.db.pg_connections import (
    PLANNER_SETTINGS,
    asyncpg_connect_args,
    psycopg_connect_args,
    session_settings,
)
from catalog.db.types import unicode_lower
from catalog.db.urls import resolve_urls

AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}
_CONNECTED_AT = "catalog_connected_at"  # in a pool entry's info: when it was connected


class Backend:
    """The operations and capabilities that depend on the database engine."""

    name: ClassVar[str]
    autocommit_writes: ClassVar[bool]
    writable_ctes: ClassVar[bool]
    indexes_place_nulls: ClassVar[bool]
    value_statistics: ClassVar[bool]
    name_trigram_table: ClassVar[bool]
    links_by_price: ClassVar[bool]

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
        self,
        engine: AsyncEngine,
        query: CompiledQuery,
        params: Mapping[str, Any],
        *,
        retry_lost: bool = False,
        writes: bool = False,
    ) -> Sequence[Row]:
        """All rows of `query`, run on its own outside any transaction.

        `retry_lost`: run it once more on a fresh connection if the connection turns out
        to be gone (for reads, which are always safe to repeat). `writes`: the statement
        changes data (if it is cut off, its cancellation must reach the server).
        """
        async with engine.connect() as connection:
            await connection.execution_options(**AUTOCOMMIT)
            result = await connection.execute(query.statement, dict(params))
            return result.mappings().all()

    def writer_queue(self) -> asyncio.Lock | None:
        """A lock writers of one process take in turn, where the database needs one."""
        return None

    def persist_planner_settings(self, connection: Connection) -> list[str]:
        """Store the API's planner settings in the database itself; what was set."""
        return []


class PostgreSQL(Backend):
    """asyncpg for the API, psycopg for the CLI; statements run on the raw asyncpg connection."""

    name = "postgresql"
    autocommit_writes = True
    writable_ctes = True
    indexes_place_nulls = True  # NULLS FIRST/LAST indexes (migration 0008)
    value_statistics = True  # histograms and most common values (ANALYZE)
    name_trigram_table = False  # q reads the pg_trgm index (0002) through the plan itself
    links_by_price = True  # migration 0015

    def engine_options(self, settings: Settings, *, asynchronous: bool) -> dict[str, Any]:
        options = super().engine_options(settings, asynchronous=asynchronous) | {
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout,
            "pool_recycle": settings.db_pool_recycle,
        }
        urls = resolve_urls(settings.database_url)
        args = asyncpg_connect_args(settings) if asynchronous else psycopg_connect_args(settings)
        # What DATABASE_URL says explicitly wins over the settings' defaults.
        given = (urls.async_url if asynchronous else urls.sync_url).query
        options["connect_args"] = {k: v for k, v in args.items() if k not in given}
        return options

    def configure(self, engine: Engine, settings: Settings) -> None:
        if settings.database_pooler != "none" and engine.dialect.driver == "asyncpg":
            bounds = {
                name: value
                for name, value in session_settings(settings).items()
                if name in ("statement_timeout", "lock_timeout")
            }
            if bounds:
                # Behind a pooler, each transaction sets the API's time bounds for itself
                # (one statement; they end with it, like the pooler's session).
                assignments = ", ".join(
                    f"set_config('{k}', '{v}', true)" for k, v in bounds.items()
                )

                @event.listens_for(engine, "begin")
                def _bound_transaction(connection: Connection) -> None:
                    connection.exec_driver_sql(f"SELECT {assignments}")

        # Every connection made before `replace_before` is replaced at its next checkout,
        # as SQLAlchemy does after a disconnect (the raw path invalidates one connection
        # only), after either of:
        # - a write refused as on a standby (a leader demoted by a failover, a connection
        #   routed to a replica): they may all lead to that server, and new ones reach
        #   whichever server takes writes (HAProxy follows the leader);
        # - a connection the server ended (restart, failover, pg_terminate_backend): the
        #   others were ended too, but the event loop may not have read that yet, and one
        #   that has read the goodbye and not yet the closure refuses every statement.
        replace_before = 0.0

        @event.listens_for(engine, "connect")
        def _stamp(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            record.info[_CONNECTED_AT] = time.monotonic()

        @event.listens_for(engine, "handle_error")
        def _invalidate_on_standby(context: ExceptionContext) -> None:
            if refused_as_standby(context.original_exception):
                context.is_disconnect = True  # the session path; the raw one invalidates

        @event.listens_for(engine, "invalidate")
        def _note_ended(dbapi_connection: Any, record: Any, error: BaseException | None) -> None:
            nonlocal replace_before
            if error is not None and (refused_as_standby(error) or closed_by_server(error)):
                replace_before = time.monotonic()

        @event.listens_for(engine, "checkout")
        def _replace_dead(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            # After a server restart, failover or pg_terminate_backend, pooled asyncpg
            # connections may have already seen their socket close: asking is local, no
            # round trip. The pool then discards this one and hands out a fresh connection.
            driver = getattr(dbapi_connection, "driver_connection", None)  # asyncpg's
            is_closed = getattr(driver, "is_closed", None)
            if callable(is_closed) and is_closed():
                raise DisconnectionError("pooled connection was closed by the server")
            connected_at = record.info.get(_CONNECTED_AT)
            if connected_at is not None and connected_at <= replace_before:
                raise DisconnectionError("pooled connection may be ended or lead to a standby")

    def persist_planner_settings(self, connection: Connection) -> list[str]:
        # For every connection to this database, whatever passes between (a pooler
        # forwards no startup parameter); harmless for the CLI, unlike time bounds.
        database = connection.scalar(text("SELECT current_database()"))
        name = connection.dialect.identifier_preparer.quote(str(database))
        done = []
        for setting, value in PLANNER_SETTINGS.items():
            connection.execute(text(f"ALTER DATABASE {name} SET {setting} = {value}"))
            done.append(f"{setting} = {value}")
        return done

    async def fetch(
        self,
        engine: AsyncEngine,
        query: CompiledQuery,
        params: Mapping[str, Any],
        *,
        retry_lost: bool = False,
        writes: bool = False,
    ) -> Sequence[Row]:
        # Straight on the pool's asyncpg connection: no BEGIN/COMMIT around one statement,
        # no result-processing layer, asyncpg's own prepared-statement cache. Parameters
        # must be driver-native values (int, str, bool, Decimal, aware datetime, list).
        compiled = query.compiled(engine.dialect)
        sql = compiled.sql
        for attempt in (1, 2):
            pooled = await engine.raw_connection()
            driver: Any = pooled.driver_connection
            handed_off = False
            started = observe.now()
            try:
                records: Sequence[Row]
                if query.custom_plan:
                    # A statement of its own, planned with these values (asyncpg's cache,
                    # and the server's plan cache with it, are left out; behind a pooler
                    # the statement is unnamed, as every statement there).
                    prepared = await driver.prepare(sql)
                    records = await prepared.fetch(*compiled.arguments(params))
                else:
                    records = await driver.fetch(sql, *compiled.arguments(params))
                observe.report(self.name, sql, started)
                return records
            except asyncio.CancelledError:
                # Cut off (client gone, deadline): mid-statement, asyncpg is now asking the
                # server to cancel it; between asyncpg's steps, the server waits for the
                # rest of the exchange. Until that has ended, the connection is busy.
                # Closing it now would drop the cancellation, and a statement waiting on a
                # lock would still run, and commit, once the lock goes.
                settled = after_cancellation(pooled, driver)
                handed_off = True
                if writes:
                    # A write finishes once the server has the cancellation (whoever cut it
                    # off may release a lock right after), but never waits long for a
                    # server that cannot answer: the settling goes on in the background.
                    with contextlib.suppress(BaseException):
                        await asyncio.wait({settled}, timeout=CANCEL_DELIVERY_SECONDS)
                raise
            except BaseException as error:
                observe.report(self.name, sql, started, error)
                if _suspect(error):
                    # Timed out, lost, terminated: the connection may be half-closed or
                    # mid-protocol; never hand it to another request. Synchronous
                    # (asyncpg's terminate): nothing can interrupt it and let the connection
                    # go back to the pool.
                    pooled.invalidate(error if isinstance(error, Exception) else None)
                if isinstance(error, CONNECTION_LOST) and not isinstance(error, TimeoutError):
                    if retry_lost and attempt == 1:
                        continue  # a read is safe to run again, on a fresh connection
                    raise DatabaseUnavailableError(f"connection lost: {error}") from error
                translated = _as_sqlalchemy_error(error, sql, params)
                if translated is error:
                    raise
                raise translated from error
            finally:
                if not handed_off:
                    await give_back(pooled)
        raise AssertionError("unreachable")


def _suspect(error: BaseException) -> bool:
    """Whether a connection that raised `error` may be unusable: anything but an error the
    server reported about the statement itself (a constraint, a syntax error...)."""
    if isinstance(error, asyncpg.PostgresError):
        return is_unavailable(error)
    return True


def _as_sqlalchemy_error(
    error: BaseException, sql: str, params: Mapping[str, Any]
) -> BaseException:
    """What SQLAlchemy raises for the same failure: callers see one family of errors
    whichever way a statement ran (CancelledError and the like pass unchanged).
    Parameters stay out of their messages (as `hide_parameters` does for the engine):
    they may be secrets."""
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(sql, params, error, hide_parameters=True)
    if isinstance(error, asyncpg.PostgresError):
        return DBAPIError(sql, params, error, hide_parameters=True)
    if isinstance(error, TimeoutError):  # command_timeout: the server did not answer
        return DatabaseUnavailableError("the database did not answer in time")
    if isinstance(error, asyncpg.InternalClientError):
        return DatabaseUnavailableError(f"the connection broke: {error}")
    return error


class SQLite(Backend):
    """aiosqlite for the API, sqlite3 for the CLI: one file, one writer at a time."""

    name = "sqlite"
    # A write outside the session would skip the writer queue and poll SQLite's lock.
    autocommit_writes = False
    # SQLite cannot put INSERT/UPDATE/DELETE in a WITH clause.
    writable_ctes = False
    # An index puts NULLs first; a NULLS FIRST/LAST order makes the planner sort instead.
    indexes_place_nulls = False
    # sqlite_stat1 only (Python's SQLite has no STAT4): any range is taken for 1/64.
    value_statistics = False
    name_trigram_table = True  # migration 0011
    links_by_price = False

    def configure(self, engine: Engine, settings: Settings) -> None:
        busy_timeout_ms = int(settings.sqlite_busy_timeout_ms)
        mmap_bytes = int(settings.sqlite_mmap_mb) * 2**20

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            # Take transaction control away from the driver; the "begin" hook below owns it.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _use_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Lists fetch rows by id all over the file (a tag's items, a search's
            # candidates): through the map they are memory reads shared by every
            # connection, not a read() per page missed (10,001 rows: 117 -> 27 ms).
            cursor.execute(f"PRAGMA mmap_size = {mmap_bytes}")
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


def _use_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Put the file in WAL mode (it stays so), retrying within the busy timeout.

    The switch needs the file to itself and fails at once, without SQLite's busy handler,
    while another connection holds any lock: on a fresh file opened by several processes
    at once (instances starting together), 1 connection in 25 was seen to fail here.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:  # aiosqlite raises sqlite3's own too
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(0.005)


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
