"""Schema changes that run on a populated database while the service keeps writing.

Used by migrations (inside `alembic upgrade`), in both online and offline (`--sql`) mode:
nothing here inspects the live database to decide what SQL to emit, so the SQL a
reviewer (or squawk) reads offline is the SQL that runs.

PostgreSQL:
- indexes are built and dropped CONCURRENTLY, outside a transaction
  (`op.get_context().autocommit_block()`); a build that failed leaves an INVALID index
  behind, so the build drops any leftover of that name first;
- `ALTER TABLE` waits for an ACCESS EXCLUSIVE lock behind every reader, and every later
  query waits behind it: it runs with a short `lock_timeout` and is retried;
- backfills commit batch by batch (a DO block with COMMIT, run outside a transaction), so
  no row stays locked for longer than one batch;
- constraints are added NOT VALID (instant) and validated afterwards (no write lock).
SQLite has none of these problems (one writer at a time, and `catalog db upgrade` holds the
write lock): the helpers fall back to the plain operations there.

Leaving the transaction releases a transaction-scoped advisory lock, so the runner (env.py)
holds the migration lock at session level, taken before its transaction begins (here it is
taken again only when a migration runs without that runner).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import OperationalError

# pg_advisory_(xact_)lock key: one migrator at a time per database, whatever the instance.
MIGRATION_LOCK_KEY = 727_100_001
SESSION_LOCK_FLAG = "catalog_migration_session_lock"
NO_SESSION_LOCK_FLAG = "catalog_migration_no_session_lock"  # transaction-mode pooler
# How long one attempt of an ALTER TABLE waits for its lock, and how often it tries.
DDL_LOCK_TIMEOUT_MS = 500
DDL_ATTEMPTS = 60
LOCK_NOT_AVAILABLE = "55P03"


def is_postgresql() -> bool:
    """Whether the migration runs against PostgreSQL (online or offline)."""
    return op.get_context().dialect.name == "postgresql"


def _offline() -> bool:
    return op.get_context().as_sql


def _hold_session_lock() -> None:
    """Keep other migrators out across the commits an autocommit block makes."""
    if _offline():
        return
    connection = op.get_bind()
    if not connection.info.get(SESSION_LOCK_FLAG) and not connection.info.get(NO_SESSION_LOCK_FLAG):
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.info[SESSION_LOCK_FLAG] = True


def release_session_lock(connection: sa.Connection) -> None:
    """Release the session-level migration lock if a migration took it (env.py)."""
    if connection.info.pop(SESSION_LOCK_FLAG, False):
        connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})


def run_outside_transaction(*statements: str) -> None:
    """Run each statement in its own transaction (PostgreSQL), e.g. CONCURRENTLY or DO/COMMIT."""
    _hold_session_lock()
    with op.get_context().autocommit_block():
        for statement in statements:
            op.execute(sa.text(statement))


def create_index(
    name: str,
    table: str,
    columns: Sequence[str],
    *,
    postgresql_definition: str | None = None,
) -> None:
    """CREATE INDEX CONCURRENTLY on PostgreSQL (`postgresql_definition` is what follows
    `ON table`, e.g. "USING gin (tag_ids gin__int_ops)"); a plain CREATE INDEX on SQLite."""
    if not is_postgresql():
        op.create_index(name, table, list(columns))
        return
    definition = postgresql_definition or f"({', '.join(columns)})"
    run_outside_transaction(
        f"DROP INDEX CONCURRENTLY IF EXISTS {name}",  # an INVALID leftover of a failed build
        f"CREATE INDEX CONCURRENTLY {name} ON {table} {definition}",
    )


def drop_index(name: str, table: str) -> None:
    """DROP INDEX CONCURRENTLY on PostgreSQL; a plain DROP INDEX on SQLite."""
    if not is_postgresql():
        op.drop_index(name, table_name=table)
        return
    run_outside_transaction(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def alter_table(statement: str) -> None:
    """One ALTER TABLE (PostgreSQL) under a short lock_timeout, retried while it times out.

    Each attempt is its own transaction: a waiting ALTER holds every later query on the
    table back, so it gives up after DDL_LOCK_TIMEOUT_MS and tries again a little later.
    """
    _hold_session_lock()
    with op.get_context().autocommit_block():
        if _offline():
            op.execute(sa.text(f"SET lock_timeout = {DDL_LOCK_TIMEOUT_MS}"))
            op.execute(sa.text(statement))
            op.execute(sa.text("RESET lock_timeout"))
            return
        connection = op.get_bind()
        connection.exec_driver_sql(f"SET lock_timeout = {DDL_LOCK_TIMEOUT_MS}")
        try:
            for attempt in range(1, DDL_ATTEMPTS + 1):
                try:
                    connection.exec_driver_sql(statement)
                    return
                except OperationalError as error:
                    code = getattr(error.orig, "sqlstate", None)
                    if code != LOCK_NOT_AVAILABLE or attempt == DDL_ATTEMPTS:
                        raise
                    time.sleep(min(0.05 * attempt, 1.0))
        finally:
            connection.exec_driver_sql("RESET lock_timeout")


def backfill(update_batch: str, table: str, batch_size: int = 1000) -> None:
    """Run `update_batch` for each id range of `table`, committing after each (PostgreSQL).

    `update_batch` is PL/pgSQL using `lo` and `hi` (ids lo <= id < hi). One DO block does
    the loop, so the offline SQL is the SQL that runs.
    """
    body = f"""DO $backfill$
DECLARE
    lo bigint;
    hi bigint;
    last_id bigint;
BEGIN
    SELECT min(id), max(id) INTO lo, last_id FROM {table};
    WHILE lo <= last_id LOOP
        hi := lo + {int(batch_size)};
        {update_batch}
        COMMIT;
        lo := hi;
    END LOOP;
END
$backfill$"""
    run_outside_transaction(body)
