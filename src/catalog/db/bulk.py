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

from collections.abc import Sequence

from sqlalchemy import Connection, text

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
