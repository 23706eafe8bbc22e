"""Indexes for sorts led by the nullable updated_at, built CONCURRENTLY.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Most items are never updated, so under `sort=-updated_at` (NULLs first) or
`sort=updated_at,name` nearly the whole table is one group of equal (NULL) keys: an index
on (updated_at, id) leaves that group to be sorted in full (a million rows: 0.3-1.6 s).
These indexes match the ORDER BY the pagination module writes, NULLS placement included:
- (updated_at DESC NULLS FIRST, id): `-updated_at`;
- (updated_at, name, id), read backwards for `-updated_at,-name`;
- (updated_at DESC NULLS FIRST, name, id), read backwards for `updated_at,-name`.
PostgreSQL only: SQLite's indexes cannot place NULLs (it sorts instead).
"""

from collections.abc import Sequence

from catalog.migrations import online

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQUAWK_IGNORE = {
    "prefer-robust-stmts": "each CREATE INDEX CONCURRENTLY comes right after a DROP INDEX "
    "CONCURRENTLY IF EXISTS of the same name (online.create_index): a rerun after a failed "
    "build drops the INVALID leftover first, which IF NOT EXISTS would keep",
}

# name: (columns, PostgreSQL definition)
INDEXES = {
    "ix_items_updated_at_desc_id": (
        ["updated_at", "id"],
        "(updated_at DESC NULLS FIRST, id)",
    ),
    "ix_items_updated_at_name_id": (["updated_at", "name", "id"], "(updated_at, name, id)"),
    "ix_items_updated_at_desc_name_id": (
        ["updated_at", "name", "id"],
        "(updated_at DESC NULLS FIRST, name, id)",
    ),
}


def upgrade() -> None:
    if not online.is_postgresql():
        return
    for name, (columns, definition) in INDEXES.items():
        online.create_index(name, "items", columns, postgresql_definition=definition)


def downgrade() -> None:
    if not online.is_postgresql():
        return
    for name in reversed(INDEXES):
        online.drop_index(name, "items")
