"""Each link carries its item's price and is_active, for one tag's items by price (PostgreSQL).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

The bench's `filtered` page (one tag, a price range, active items, sorted by price) walked
the items' price index and tested every entry's tags: 3,600 entries for a page of 50 when
the tag is on 1.4% of the items, and a total read the tag's every item. With price and
is_active on item_tags, the index (tag_id, price, item_id) INCLUDE (is_active) holds one
tag's links in price order: the page reads its 51 entries (0.65 -> 0.03 ms at 1M items),
the capped total counts entries of that tag alone, at any table size.

Triggers keep the copy exact whatever writes (the service, an import, psql):
- a link written (inserted, or updated in any column) reads its item's values with FOR
  SHARE: a concurrent change of the item's price or is_active commits first and is read,
  or waits for this transaction to commit and then updates the link itself;
- an item whose price or is_active changes updates its links (AFTER ROW: the links its
  own statement wrote are there by then). That trigger goes in first: a link written
  between the two is NULL until the backfill, never stale.
0007's trigger recomputed items.tag_ids for every item whose links an UPDATE touched, so
each price change rewrote (and locked FOR UPDATE) its item a second time, and the backfill
every item: an UPDATE of links now recomputes only the items whose (item_id, tag_id) pairs
changed.
No model: SQLite lists one tag's items through its own indexes; the drift check leaves the
two columns, their CHECK and the index to this migration and its tests.

Online: the columns are added without a default (no rewrite) under a short, retried lock
timeout; the triggers go in before the backfill; the backfill makes the links of 1,000
items per transaction equal to their items (NULL or not: a rerun repairs whatever a
stopped run left), having locked those items first (FOR SHARE, in id order):
an item's change, whose trigger updates its links in another order than the backfill's,
would otherwise deadlock with it. The NOT NULL guarantee is a CHECK added NOT VALID, then
validated; the index is built CONCURRENTLY. Every step can run again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.migrations import online

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQUAWK_IGNORE = {
    "prefer-robust-stmts": "each CREATE INDEX CONCURRENTLY comes right after a DROP INDEX "
    "CONCURRENTLY IF EXISTS of the same name (online.create_index): a rerun after a failed "
    "build drops the INVALID leftover first, which IF NOT EXISTS would keep",
    "ban-drop-constraint": "the one constraint dropped is this migration's own CHECK, and "
    "only IF EXISTS (left by a run stopped half-way), so that a rerun can add it again",
    "adding-field-with-default": "no default: the columns are added NULL and backfilled",
}

PRICE_INDEX = "ix_item_tags_tag_id_price_item_id"
NOT_NULL = "ck_item_tags_copies_not_null"

# 0007's function, whose UPDATE branch 0015 narrows to the pairs that changed.
_SYNC_FUNCTION = """
CREATE OR REPLACE FUNCTION items_sync_tag_ids() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed integer[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        changed := ARRAY(SELECT DISTINCT item_id FROM new_links);
    ELSIF TG_OP = 'DELETE' THEN
        changed := ARRAY(SELECT DISTINCT item_id FROM old_links);
    ELSE
        {update_branch}
    END IF;
    PERFORM 1 FROM items WHERE id IN (SELECT unnest(changed)) ORDER BY id FOR UPDATE;
    UPDATE items SET tag_ids = coalesce(
        (SELECT array_agg(l.tag_id ORDER BY l.tag_id) FROM item_tags l WHERE l.item_id = items.id),
        '{{}}')
    WHERE id IN (SELECT unnest(changed));
    RETURN NULL;
END
$$"""
_SYNC_UPDATE_0007 = (
    "changed := ARRAY(SELECT item_id FROM old_links UNION SELECT item_id FROM new_links);"
)
_SYNC_UPDATE = """changed := ARRAY(
            SELECT item_id FROM (SELECT item_id, tag_id FROM old_links
                                 EXCEPT SELECT item_id, tag_id FROM new_links) AS gone
            UNION
            SELECT item_id FROM (SELECT item_id, tag_id FROM new_links
                                 EXCEPT SELECT item_id, tag_id FROM old_links) AS came);
        IF cardinality(changed) = 0 THEN
            RETURN NULL;  -- only the copies changed
        END IF;"""
_LINK_FUNCTION = """
CREATE OR REPLACE FUNCTION item_tags_copy_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT price, is_active INTO NEW.price, NEW.is_active
    FROM items WHERE id = NEW.item_id FOR SHARE;
    IF NOT FOUND THEN
        -- No such item: the foreign key refuses the row, with its own error.
        NEW.price := 0;
        NEW.is_active := false;
    END IF;
    RETURN NEW;
END
$$"""
_ITEM_FUNCTION = """
CREATE OR REPLACE FUNCTION items_copy_to_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE item_tags SET price = NEW.price, is_active = NEW.is_active WHERE item_id = NEW.id;
    RETURN NULL;
END
$$"""
# In this order (see the docstring).
_TRIGGERS = {
    "items_copy_to_links": (
        "AFTER UPDATE OF price, is_active ON items FOR EACH ROW"
        " WHEN (OLD.price IS DISTINCT FROM NEW.price OR OLD.is_active IS DISTINCT FROM"
        " NEW.is_active) EXECUTE FUNCTION items_copy_to_links()"
    ),
    "item_tags_copy_item": (
        "BEFORE INSERT OR UPDATE ON item_tags FOR EACH ROW EXECUTE FUNCTION item_tags_copy_item()"
    ),
}
_TRIGGER_TABLES = {"items_copy_to_links": "items", "item_tags_copy_item": "item_tags"}
_BACKFILL = """
PERFORM 1 FROM items WHERE id >= lo AND id < hi ORDER BY id FOR SHARE;
UPDATE item_tags l SET price = i.price, is_active = i.is_active
FROM items i
WHERE i.id = l.item_id AND l.item_id >= lo AND l.item_id < hi
  AND (l.price, l.is_active) IS DISTINCT FROM (i.price, i.is_active);"""


def upgrade() -> None:
    if not online.is_postgresql():
        return
    online.alter_table(
        "ALTER TABLE item_tags ADD COLUMN IF NOT EXISTS price numeric(12, 2),"
        " ADD COLUMN IF NOT EXISTS is_active boolean"
    )
    op.execute(sa.text(_SYNC_FUNCTION.format(update_branch=_SYNC_UPDATE)))
    op.execute(sa.text(_LINK_FUNCTION))
    op.execute(sa.text(_ITEM_FUNCTION))
    for name, definition in _TRIGGERS.items():
        online.alter_table(f"CREATE OR REPLACE TRIGGER {name} {definition}")
    online.backfill(_BACKFILL, "items")
    online.alter_table(
        f"ALTER TABLE item_tags DROP CONSTRAINT IF EXISTS {NOT_NULL}, ADD CONSTRAINT {NOT_NULL}"
        " CHECK (price IS NOT NULL AND is_active IS NOT NULL) NOT VALID"
    )
    online.alter_table(f"ALTER TABLE item_tags VALIDATE CONSTRAINT {NOT_NULL}")
    online.create_index(
        PRICE_INDEX,
        "item_tags",
        ["tag_id", "price", "item_id"],
        postgresql_definition="(tag_id, price, item_id) INCLUDE (is_active)",
    )
    # Plans of price-sorted tag lists need the new columns' statistics now.
    online.run_outside_transaction("ANALYZE item_tags")


def downgrade() -> None:
    if not online.is_postgresql():
        return
    online.drop_index(PRICE_INDEX, "item_tags")
    for name, table in _TRIGGER_TABLES.items():
        online.alter_table(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute(sa.text("DROP FUNCTION IF EXISTS item_tags_copy_item()"))
    op.execute(sa.text("DROP FUNCTION IF EXISTS items_copy_to_links()"))
    op.execute(sa.text(_SYNC_FUNCTION.format(update_branch=_SYNC_UPDATE_0007)))
    online.alter_table(
        "ALTER TABLE item_tags DROP COLUMN IF EXISTS price, DROP COLUMN IF EXISTS is_active"
    )
