"""Alembic environment: the URL comes from the application settings, never alembic.ini.

Runs on the sync engine (psycopg / sqlite3). Batch mode on SQLite lets later
migrations ALTER tables; type and server-default comparison keep autogenerate honest.
"""

from __future__ import annotations

import sys
import time
from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, text

from catalog import models  # noqa: F401  (registers the tables on the metadata)
from catalog.config import Settings, SettingsError, get_settings
from catalog.db import name_search
from catalog.db.backends import backend_of
from catalog.db.base import Base
from catalog.db.engine import create_sync_engine
from catalog.db.types import StringList, UTCDateTime
from catalog.migrations import online
from catalog.migrations.online import MIGRATION_LOCK_KEY, release_session_lock
from catalog.models import UNMODELLED_LINK_COLUMNS, UNMODELLED_ON_POSTGRESQL

# The models' metadata; a test may compare against another (runner.revision).
target_metadata = context.config.attributes.get("target_metadata", Base.metadata)


def _settings() -> Settings:
    given = context.config.attributes.get("settings")
    if given is not None:
        return given  # type: ignore[no-any-return]
    try:
        return get_settings()
    except SettingsError as error:
        sys.exit(f"error: {error}")


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    # Render our TypeDecorators as their plain SQL types: migrations stay importable
    # without the application code changing under them.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, StringList):
        return "sa.JSON()"
    return False


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Objects only one backend has (e.g. the pg_trgm index) are not drift elsewhere.
    info = getattr(obj, "info", {}) or getattr(compare_to, "info", {})
    if type_ == "table" and reflected and name and name_search.is_search_table(name):
        return False  # SQLite's FTS5 index of names (0011) and its shadow tables: no model
    if reflected and name in UNMODELLED_ON_POSTGRESQL:
        return False  # PostgreSQL's folded names (0014), links' copies (0015): no model
    if type_ == "column" and reflected and name in UNMODELLED_LINK_COLUMNS:
        return getattr(getattr(obj, "table", None), "name", None) != "item_tags"
    if info.get("postgresql_only"):
        return context.get_context().dialect.name == "postgresql"
    if info.get("sqlite_only"):
        return context.get_context().dialect.name == "sqlite"
    return True


def _configure(connection: Connection | None = None, **kw: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        render_as_batch=True,
        render_item=_render_item,
        include_object=_include_object,
        **kw,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`)."""
    from catalog.db.urls import resolve_urls

    settings = _settings()
    url = resolve_urls(settings.database_url).sync_url
    # SQLite too in one transaction, as online (see run_migrations_online).
    _configure(
        url=url.render_as_string(hide_password=False), literal_binds=True, transactional_ddl=True
    )
    with context.begin_transaction():
        if url.get_backend_name() == "postgresql":
            # What the online run sets (`_one_at_a_time`), so the script (and squawk's
            # require-lock-timeout) sees the bound the DDL really runs under.
            context.execute(f"SET LOCAL lock_timeout = {int(settings.migration_lock_timeout_ms)}")
        context.run_migrations()


def _one_at_a_time(connection: Connection, settings: Settings) -> None:
    """Serialize migrators, then bound how long migration DDL may wait for a table.

    Started by N instances at once, the first migrates and the others wait here, then find
    the database at head (Alembic reads the version after this). Transaction-scoped, so it
    holds behind a transaction-mode pooler too. Waiting on a busy table, by contrast, fails
    fast: every query on that table would otherwise queue behind the waiting DDL. (SQLite:
    the one write transaction of the whole upgrade, BEGIN IMMEDIATE, is the lock; see
    `run_migrations_online` and `_migration_settings`.)
    """
    if backend_of(connection).name != "postgresql":
        return
    wait_ms, ddl_ms = settings.migration_wait_timeout_s * 1000, settings.migration_lock_timeout_ms
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait_ms)}")
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(ddl_ms)}")


def _wait_for_session_lock(connection: Connection, settings: Settings) -> None:
    """Take the migration lock at session level, waiting outside any transaction.

    Online migrations leave the transaction (CREATE INDEX CONCURRENTLY, batched backfills:
    migrations/online.py), which would release a transaction-scoped lock; and a CONCURRENTLY
    build waits for every open transaction, so a migrator queued *inside* a transaction
    would deadlock with it. So the others poll, each try a statement of its own. Behind a
    transaction-mode pooler session state does not hold: the transaction-scoped lock alone
    serializes there (run online migrations on a direct connection; see README).
    """
    if backend_of(connection).name != "postgresql":
        return
    if settings.database_pooler == "transaction":
        connection.info[online.NO_SESSION_LOCK_FLAG] = True
        return
    deadline = time.monotonic() + settings.migration_wait_timeout_s
    while True:
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        ).scalar()
        connection.commit()
        if got:
            connection.info[online.SESSION_LOCK_FLAG] = True
            return
        if time.monotonic() > deadline:
            wait = settings.migration_wait_timeout_s
            sys.exit(
                f"error: another migration held the lock for {wait} s (MIGRATION_WAIT_TIMEOUT_S)"
            )
        time.sleep(0.2)


def _migration_settings(settings: Settings) -> Settings:
    # An SQLite migrator waits for another one's write transaction as long as it may wait.
    wait_ms = settings.migration_wait_timeout_s * 1000
    return settings.model_copy(update={"sqlite_busy_timeout_ms": wait_ms})


def run_migrations_online() -> None:
    settings = _settings()
    engine = create_sync_engine(_migration_settings(settings))
    try:
        with engine.connect() as connection:
            # SQLite's DDL is transactional too (the driver's own transaction handling is
            # off, see db/backends.py), but Alembic assumes not and commits after each
            # migration: another instance then took the write lock in between, read a
            # half-way version and ran the same migrations again. One transaction from
            # reading the version to the last migration: the write lock serializes. So a
            # SQLite migration must never leave the transaction (autocommit_block).
            _configure(connection, transactional_ddl=True)
            try:
                _wait_for_session_lock(connection, settings)
                with context.begin_transaction():
                    _one_at_a_time(connection, settings)
                    context.run_migrations()
            finally:
                # Taken by migrations that leave the transaction (migrations/online.py).
                release_session_lock(connection)
                connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
