"""Indexes for a narrow filter sorted by another field, built CONCURRENTLY.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

At 10M items three shapes walked the sort's index and filtered row by row, fetching
each row from the table for the filter (`python -m bench.shapes --items 10000000`):
- one owner's items by price: 160 ms, now a walk of (owner_id, price, id): 3 ms;
- a narrow creation range by price: 232 ms (65,822 rows read for 51), now an index-only
  range scan of (created_at, id) INCLUDE (price, name) and a sort of its 9,200 rows: 5 ms;
- a narrow price range by name: 196 ms (52,730 rows), now an index-only range scan of
  (price, id) INCLUDE (is_active, tag_ids, name): 6 ms.
The two covering indexes replace (created_at, id) and the price index of 0009, which they
contain (same keys). PostgreSQL only: SQLite keeps (created_at, id), has no INCLUDE, and
answers these shapes in time at 1M. Built CONCURRENTLY; the replaced indexes are dropped
CONCURRENTLY once all their successors exist.
"""

from collections.abc import Sequence

from catalog.migrations import online

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQUAWK_IGNORE = {
    "prefer-robust-stmts": "each CREATE INDEX CONCURRENTLY comes right after a DROP INDEX "
    "CONCURRENTLY IF EXISTS of the same name (online.create_index): a rerun after a failed "
    "build drops the INVALID leftover first, which IF NOT EXISTS would keep",
}

OWNER_PRICE = "ix_items_owner_id_price_id"
# new name: (columns, PostgreSQL definition, the index it replaces and that one's definition)
COVERING = {
    "ix_items_created_at_id_covering": (
        ["created_at", "id"],
        "(created_at, id) INCLUDE (price, name)",
        "ix_items_created_at_id",
        "(created_at, id)",
    ),
    "ix_items_price_id_covering": (
        ["price", "id"],
        "(price, id) INCLUDE (is_active, tag_ids, name)",
        "ix_items_price_id_cover",
        "(price, id) INCLUDE (is_active, tag_ids)",
    ),
}


def upgrade() -> None:
    if not online.is_postgresql():
        return
    online.create_index(OWNER_PRICE, "items", ["owner_id", "price", "id"])
    # Every new index first, then the old ones: a rerun after a failed build rebuilds the
    # new indexes while the old ones still serve (create_index drops a same-name index).
    for name, (columns, definition, _, _) in COVERING.items():
        online.create_index(name, "items", columns, postgresql_definition=definition)
    for _, _, replaced, _ in COVERING.values():
        online.drop_index(replaced, "items")


def downgrade() -> None:
    if not online.is_postgresql():
        return
    for name, (columns, _, replaced, old_definition) in reversed(COVERING.items()):
        online.create_index(replaced, "items", columns, postgresql_definition=old_definition)
        online.drop_index(name, "items")
    online.drop_index(OWNER_PRICE, "items")
