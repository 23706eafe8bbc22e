"""Item names lower-cased once, in items.name_folded, for `q` as a plain LIKE (PostgreSQL).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

`q` folded case on every row it tested: `(name COLLATE "default") ILIKE`, which under the
database's default collation lower-cases both the name and the pattern for each row
(0.37 us a row, against 0.09 us for a LIKE on names lower-cased beforehand, measured on
600,000 names). A capped count of a common `q` tests ~500,000 names (190 ms at 10M
items), and planning a search applies the pattern to the column's 1,000 sampled names
(0012) the same costly way (0.7 ms every search). `name_folded` holds
`lower(name COLLATE "default")`, as ILIKE lowers it, under the "C" collation: the search
is `name_folded LIKE lower(pattern)`, the same matches (ILIKE lower-cases both sides the
same way) at a fraction of the cost. Its trigram index replaces the one on `name`.

A trigger keeps the copy exact whatever writes `name` (the service, an import, psql).
No model: SQLite searches through its own index of lower-cased names (0011); the drift
check leaves the column, its index and its CHECK to this migration and its tests.

Online: the column is added without a default (no rewrite) under a short, retried lock
timeout; the trigger goes in before the backfill (rows written meanwhile fold their own
names); the backfill updates 1,000 items per transaction; the NOT NULL guarantee is a
CHECK added NOT VALID, then validated; the index is built CONCURRENTLY before the old one
is dropped CONCURRENTLY. Every step can run again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.migrations import online

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQUAWK_IGNORE = {
    "prefer-robust-stmts": "each CREATE INDEX CONCURRENTLY comes right after a DROP INDEX "
    "CONCURRENTLY IF EXISTS of the same name (online.create_index): a rerun after a failed "
    "build drops the INVALID leftover first, which IF NOT EXISTS would keep",
    "ban-drop-constraint": "the one constraint dropped is this migration's own CHECK, and "
    "only IF EXISTS (left by a run stopped half-way), so that a rerun can add it again",
    "adding-field-with-default": "no default: the column is added NULL and backfilled",
}

FOLDED_INDEX = "ix_items_name_folded_trgm"
OLD_INDEX = "ix_items_name_trgm"
NOT_NULL = "ck_items_name_folded_not_null"
NAME_STATISTICS = 1000  # as 0012 gave `name`: search plans are estimated from this sample

_FUNCTION = """
CREATE OR REPLACE FUNCTION items_fold_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.name_folded := lower(NEW.name COLLATE "default");
    RETURN NEW;
END
$$"""
_BACKFILL = """
UPDATE items SET name_folded = lower(name COLLATE "default")
WHERE id >= lo AND id < hi AND name_folded IS NULL;"""


def upgrade() -> None:
    if not online.is_postgresql():
        return
    online.alter_table('ALTER TABLE items ADD COLUMN IF NOT EXISTS name_folded text COLLATE "C"')
    op.execute(sa.text(_FUNCTION))
    online.alter_table(
        "CREATE OR REPLACE TRIGGER items_fold_name BEFORE INSERT OR UPDATE OF name ON items"
        " FOR EACH ROW EXECUTE FUNCTION items_fold_name()"
    )
    online.backfill(_BACKFILL, "items")
    online.alter_table(
        f"ALTER TABLE items DROP CONSTRAINT IF EXISTS {NOT_NULL}, ADD CONSTRAINT {NOT_NULL}"
        " CHECK (name_folded IS NOT NULL) NOT VALID"
    )
    online.alter_table(f"ALTER TABLE items VALIDATE CONSTRAINT {NOT_NULL}")
    online.alter_table(
        f"ALTER TABLE items ALTER COLUMN name_folded SET STATISTICS {NAME_STATISTICS}"
    )
    online.create_index(
        FOLDED_INDEX,
        "items",
        ["name_folded"],
        postgresql_definition="USING gin (name_folded gin_trgm_ops)",
    )
    online.drop_index(OLD_INDEX, "items")
    # Search plans need the new column's sample now, not at autovacuum's next ANALYZE.
    online.run_outside_transaction("ANALYZE items (name_folded)")


def downgrade() -> None:
    if not online.is_postgresql():
        return
    online.create_index(
        OLD_INDEX,
        "items",
        ["name"],
        postgresql_definition='USING gin (name COLLATE "default" gin_trgm_ops)',
    )
    online.drop_index(FOLDED_INDEX, "items")
    online.alter_table("DROP TRIGGER IF EXISTS items_fold_name ON items")
    op.execute(sa.text("DROP FUNCTION IF EXISTS items_fold_name()"))
    online.alter_table("ALTER TABLE items DROP COLUMN IF EXISTS name_folded")
