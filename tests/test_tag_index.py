"""Migration 0016: tag filters read a GIN index of the built-in array operators (PostgreSQL).

intarray's `@>` for int[] shadows the built-in one, and only the built-in one can use
this index, whose scans skip through long posting lists: the plan alone tells which.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Integer, literal_column, select, text

from catalog.db.types import carries_tags
from catalog.models import Item
from tests.test_migrations import migrated_postgresql


def test_a_tag_intersection_reads_the_array_ops_index(tmp_path: Path) -> None:
    ids = [literal_column(str(n), Integer) for n in (3, 5, 8)]
    condition = select(Item.id).where(carries_tags(Item.id, Item.tag_ids, *ids))
    with migrated_postgresql(tmp_path) as (_, engine), engine.connect() as connection:
        sql = str(condition.compile(dialect=engine.dialect))
        for scan in ("seqscan", "indexscan", "indexonlyscan"):  # left: bitmap scans
            connection.execute(text(f"SET enable_{scan} = off"))
        plan = "\n".join(connection.execute(text(f"EXPLAIN {sql}")).scalars())
        definition = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_items_tag_ids_array'")
        ).scalar_one()
    assert "Bitmap Index Scan on ix_items_tag_ids_array" in plan, plan
    assert "USING gin (tag_ids)" in definition  # array_ops: the default class, not shown
