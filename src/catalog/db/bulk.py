"""Bulk loads into empty PostgreSQL tables: drop the secondary indexes first, build them after.

Building an index once from all the rows is far cheaper than a million incremental updates
(the trigram GIN index above all), and a foreign key added afterwards is validated by one
join instead of a trigger per row. Only for a load into *empty* tables: the DROP locks out
readers until the commit, which matters to nobody while there is nothing to read. It all
happens in the caller's transaction, so a failed load also restores the indexes. Primary
keys and unique indexes stay (ON CONFLICT needs them).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

from catalog.progress import ProgressSink


def drop_secondary_indexes(connection: Connection, tables: Sequence[str]) -> list[str]:
    """Drop the non-unique indexes and foreign keys of `tables`; return the DDL to rebuild."""
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


def rebuild_indexes(
    connection: Connection, statements: Sequence[str], progress: ProgressSink
) -> None:
    """Run the DDL `drop_secondary_indexes` returned, reporting the phase "indexes"."""
    progress.start("indexes", len(statements))
    connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for statement in statements:
        connection.execute(text(statement))
        progress.advance("indexes", 1)
