"""Tag ids kept on the item (items.tag_ids), for one-probe tag filters on PostgreSQL.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

item_tags stays the truth; items.tag_ids is its copy, sorted ids, kept exact by triggers
on item_tags (whatever writes the links: the service, an import, a cascade). On
PostgreSQL a GIN index (intarray's gin__int_ops) answers "carries all these tags" with
`tag_ids @> ARRAY[...]` in one probe, where the join table needs one semi-join per tag.

Online (runs on a populated table while the service writes): the column is added with a
constant default (no table rewrite) under a short, retried lock_timeout; the triggers go
in before the backfill, so links written during it are kept up to date; the backfill
locks and rewrites 1,000 items per transaction; the NULL-free CHECK (intarray refuses
NULLs) is added NOT VALID and then validated; indexes are built CONCURRENTLY. See
migrations/online.py. Every step can run again (IF NOT EXISTS, OR REPLACE): a run that
stopped half-way (Alembic records the revision at the end) is simply run again
(CREATE OR REPLACE TRIGGER: PostgreSQL 14+). The intarray extension stays installed on
downgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.migrations import online

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQUAWK_IGNORE = {
    "prefer-robust-stmts": "each CREATE INDEX CONCURRENTLY comes right after a DROP INDEX "
    "CONCURRENTLY IF EXISTS of the same name (online.create_index): a rerun after a failed "
    "build drops the INVALID leftover first, which IF NOT EXISTS would keep",
    "ban-drop-constraint": "the one constraint dropped is this migration's own CHECK, and "
    "only IF EXISTS (left by a run stopped half-way), so that a rerun can add it again",
}

# The items whose links a statement changed get their tag_ids recomputed from item_tags.
# Locking them first (in id order) makes the recomputation exact under concurrent edits:
# in READ COMMITTED the UPDATE's snapshot is taken after the lock is granted, so it sees
# the links of every transaction that recomputed these items before; one that has not
# yet recomputed will wait for our lock and recompute after us.
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION items_sync_tag_ids() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed integer[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        changed := ARRAY(SELECT DISTINCT item_id FROM new_links);
    ELSIF TG_OP = 'DELETE' THEN
        changed := ARRAY(SELECT DISTINCT item_id FROM old_links);
    ELSE
        changed := ARRAY(SELECT item_id FROM old_links UNION SELECT item_id FROM new_links);
    END IF;
    PERFORM 1 FROM items WHERE id IN (SELECT unnest(changed)) ORDER BY id FOR UPDATE;
    UPDATE items SET tag_ids = coalesce(
        (SELECT array_agg(l.tag_id ORDER BY l.tag_id) FROM item_tags l WHERE l.item_id = items.id),
        '{}')
    WHERE id IN (SELECT unnest(changed));
    RETURN NULL;
END
$$"""
_PG_TRIGGERS = {
    "item_tags_sync_insert": "AFTER INSERT ON item_tags REFERENCING NEW TABLE AS new_links",
    "item_tags_sync_delete": "AFTER DELETE ON item_tags REFERENCING OLD TABLE AS old_links",
    "item_tags_sync_update": (
        "AFTER UPDATE ON item_tags REFERENCING OLD TABLE AS old_links NEW TABLE AS new_links"
    ),
}
_PG_TRUNCATE_FUNCTION = """
CREATE OR REPLACE FUNCTION items_clear_tag_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE items SET tag_ids = '{}' WHERE tag_ids <> '{}';
    RETURN NULL;
END
$$"""
_PG_BACKFILL = """
PERFORM 1 FROM items WHERE id >= lo AND id < hi ORDER BY id FOR UPDATE;
UPDATE items SET tag_ids = coalesce(
    (SELECT array_agg(l.tag_id ORDER BY l.tag_id) FROM item_tags l WHERE l.item_id = items.id),
    '{}')
WHERE id >= lo AND id < hi
  AND EXISTS (SELECT 1 FROM item_tags l WHERE l.item_id = items.id);"""
_SQLITE_SYNC = """
CREATE TRIGGER item_tags_sync_{event} AFTER {event_upper} ON item_tags BEGIN
    UPDATE items SET tag_ids = (
        SELECT json_group_array(tag_id) FROM (
            SELECT tag_id FROM item_tags WHERE item_id = {row}.item_id ORDER BY tag_id
        )
    ) WHERE id = {row}.item_id;
END"""
TAG_IDS_INDEX = "ix_items_tag_ids"
NO_NULLS = "ck_items_tag_ids_no_nulls"


def _upgrade_postgresql() -> None:
    op.execute(sa.text("CREATE EXTENSION IF NOT EXISTS intarray"))
    online.alter_table(
        "ALTER TABLE items ADD COLUMN IF NOT EXISTS tag_ids integer[] DEFAULT '{}' NOT NULL"
    )
    op.execute(sa.text(_PG_FUNCTION))
    op.execute(sa.text(_PG_TRUNCATE_FUNCTION))
    for name, timing in _PG_TRIGGERS.items():
        online.alter_table(
            f"CREATE OR REPLACE TRIGGER {name} {timing} FOR EACH STATEMENT"
            " EXECUTE FUNCTION items_sync_tag_ids()"
        )
    online.alter_table(
        "CREATE OR REPLACE TRIGGER item_tags_sync_truncate AFTER TRUNCATE ON item_tags"
        " FOR EACH STATEMENT EXECUTE FUNCTION items_clear_tag_ids()"
    )
    online.backfill(_PG_BACKFILL, "items")
    online.alter_table(
        f"ALTER TABLE items DROP CONSTRAINT IF EXISTS {NO_NULLS}, ADD CONSTRAINT {NO_NULLS}"
        " CHECK (array_position(tag_ids, NULL) IS NULL) NOT VALID"
    )
    online.alter_table(f"ALTER TABLE items VALIDATE CONSTRAINT {NO_NULLS}")
    online.create_index(
        TAG_IDS_INDEX,
        "items",
        ["tag_ids"],
        postgresql_definition="USING gin (tag_ids gin__int_ops)",
    )


def _upgrade_sqlite() -> None:
    # A plain ALTER TABLE ADD COLUMN: batch mode would rebuild the table (and drop its
    # AUTOINCREMENT).
    op.add_column(
        "items", sa.Column("tag_ids", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
    )
    for event, row in (("insert", "NEW"), ("delete", "OLD")):
        op.execute(sa.text(_SQLITE_SYNC.format(event=event, event_upper=event.upper(), row=row)))
    op.execute(
        sa.text(
            "CREATE TRIGGER item_tags_sync_update AFTER UPDATE ON item_tags BEGIN"
            " UPDATE items SET tag_ids = (SELECT json_group_array(tag_id) FROM"
            " (SELECT tag_id FROM item_tags WHERE item_id = items.id ORDER BY tag_id))"
            " WHERE id IN (OLD.item_id, NEW.item_id); END"
        )
    )
    op.execute(
        sa.text(
            "UPDATE items SET tag_ids = (SELECT json_group_array(tag_id) FROM"
            " (SELECT tag_id FROM item_tags WHERE item_id = items.id ORDER BY tag_id))"
            " WHERE id IN (SELECT item_id FROM item_tags)"
        )
    )


def upgrade() -> None:
    if online.is_postgresql():
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if online.is_postgresql():
        online.drop_index(TAG_IDS_INDEX, "items")
        for name in [*_PG_TRIGGERS, "item_tags_sync_truncate"]:
            online.alter_table(f"DROP TRIGGER IF EXISTS {name} ON item_tags")
        op.execute(sa.text("DROP FUNCTION IF EXISTS items_sync_tag_ids()"))
        op.execute(sa.text("DROP FUNCTION IF EXISTS items_clear_tag_ids()"))
        online.alter_table("ALTER TABLE items DROP COLUMN tag_ids")
        return
    for event in ("insert", "delete", "update"):
        op.execute(sa.text(f"DROP TRIGGER IF EXISTS item_tags_sync_{event}"))
    op.drop_column("items", "tag_ids")  # SQLite >= 3.35 drops a column in place
