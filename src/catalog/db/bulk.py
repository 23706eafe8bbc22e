"""Bulk loads into empty tables: drop the secondary indexes first, build them after.

Building an index once from all the rows is far cheaper than a million incremental updates
(the trigram GIN index above all; on SQLite, whose page cache is small, every update is I/O).
On PostgreSQL the foreign keys go too: added afterwards, each is validated by one join
instead of a trigger per row (SQLite cannot drop them; its checks use the primary keys).

Only for a load into *empty* tables: on PostgreSQL the DROP locks out readers until the
commit, which matters to nobody while there is nothing to read (SQLite readers keep their
snapshot, indexes included). It all happens in the caller's transaction, so a failed load
also restores the indexes. Primary keys and unique indexes stay (ON CONFLICT needs them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, text

from catalog.progress import ProgressSink


def drop_secondary_indexes(connection: Connection, tables: Sequence[str]) -> list[str]:
    """Drop the non-unique indexes (and, on PostgreSQL, foreign keys) of `tables`.

    Returns the DDL that builds them again, for `rebuild_indexes`.
    """
    if connection.dialect.name == "sqlite":
        return _drop_sqlite_indexes(connection, tables)
    names = {"tables": list(tables)}
    indexes = connection.execute(
        text(
            "SELECT format('DROP INDEX %I.%I', n.nspname, i.relname), pg_get_indexdef(i.oid) "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_namespace n ON n.oid = i.relnamespace "
            "WHERE x.indrelid = ANY(CAST(:tables AS regclass[])) AND NOT x.indisunique"
        ),
        names,
    ).all()
    foreign_keys = connection.execute(
        text(
            "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname), "
            "format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, "
            "pg_get_constraintdef(oid)) "
            "FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid = ANY(CAST(:tables AS regclass[]))"
        ),
        names,
    ).all()
    for drop, _ in [*foreign_keys, *indexes]:
        connection.execute(text(drop))
    return [create for _, create in [*indexes, *foreign_keys]]


def _drop_sqlite_indexes(connection: Connection, tables: Sequence[str]) -> list[str]:
    indexes = [
        row
        for table in tables
        for row in connection.execute(
            # origin 'c': made by CREATE INDEX (not a primary key or UNIQUE constraint).
            text(
                "SELECT m.name, m.sql FROM pragma_index_list(:table) AS i "
                "JOIN sqlite_master AS m ON m.name = i.name "
                "WHERE i.origin = 'c' AND NOT i.\"unique\""
            ),
            {"table": table},
        )
    ]
    for name, _ in indexes:
        connection.execute(text(f'DROP INDEX "{name}"'))
    return [create for _, create in indexes]


def rebuild_indexes(
    connection: Connection, statements: Sequence[str], progress: ProgressSink
) -> None:
    """Run the DDL `drop_secondary_indexes` returned, reporting the phase "indexes"."""
    progress.start("indexes", len(statements))
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for statement in statements:
        connection.execute(text(statement))
        progress.advance("indexes", 1)


# --- what bulk export and import need from each backend ----------------------------------


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection reading one consistent snapshot without holding writers back."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            with connection.begin():
                yield connection
            return
        # No transaction from SQLAlchemy (its BEGIN would be the engine's BEGIN IMMEDIATE).
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("BEGIN DEFERRED")
        try:
            yield connection
        finally:
            connection.exec_driver_sql("ROLLBACK")


def replace_rows(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """Make `rows` (tuples in column order) the whole content of a staging table: COPY on
    PostgreSQL, executemany on SQLite; in the caller's transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"TRUNCATE {table.name}"))
        columns = ", ".join(table.columns.keys())
        # The psycopg connection under SQLAlchemy's: the same transaction.
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    connection.execute(delete(table))
    if rows:
        names = table.columns.keys()
        connection.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])


def hold_ids(connection: Connection, table: str) -> None:
    """Keep other writers from taking an id this transaction will insert explicitly.

    PostgreSQL: a lock readers pass; SQLite: the write transaction already excludes them.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))


def advance_ids(connection: Connection, table: str) -> None:
    """After explicit ids: later inserts continue after the largest (PostgreSQL's sequence;
    SQLite's AUTOINCREMENT follows by itself)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                f"SELECT setval(seq, top) FROM (SELECT pg_get_serial_sequence('{table}', 'id') "
                f"AS seq, max(id) AS top FROM {table}) AS s "
                "WHERE top > coalesce(pg_sequence_last_value(seq::regclass), 0)"
            )
        )
