"""SQLite: an FTS5 trigram index of the lower-cased item names, for `q`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

SQLite read every name for a `q` (1.3-1.5 s at 1M items when it matched little or
nothing); PostgreSQL has its pg_trgm index (0002). `items_name_trigrams` holds
`unicode_lower(name)` per item id; triggers on `items` keep it in the writing transaction
(one writer at a time on SQLite: exact under concurrent writes). `unicode_lower` is the
service's SQL function, registered on every connection it opens (migrations included): a
write to `items` from a connection without it fails rather than leave the copy stale.
The index finds candidates only; the name is still tested (db/name_search.py).

The backfill reads every item once (about a minute at 1M items on a busy machine, holding
the write lock). A regular FTS5 table (it keeps its own copy of the text), so a row is
removed by id, whatever the text. detail=none: only which rows hold a trigram, not where
(the name's own test makes up for it). PostgreSQL: nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.migrations import online

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "items_name_trigrams"  # db/name_search.TABLE, spelled out: migrations stay as written
_ADD = f"INSERT INTO {TABLE} (rowid, name) VALUES (NEW.id, unicode_lower(NEW.name));"
_REMOVE = f"DELETE FROM {TABLE} WHERE rowid = OLD.id;"
TRIGGERS = {
    f"{TABLE}_insert": f"AFTER INSERT ON items BEGIN {_ADD} END",
    f"{TABLE}_update": f"AFTER UPDATE OF id, name ON items BEGIN {_REMOVE} {_ADD} END",
    f"{TABLE}_delete": f"AFTER DELETE ON items BEGIN {_REMOVE} END",
}


def upgrade() -> None:
    if online.is_postgresql():
        return
    op.execute(
        sa.text(
            f"CREATE VIRTUAL TABLE {TABLE} USING fts5"
            "(name, tokenize = 'trigram case_sensitive 1', detail = none)"
        )
    )
    # Triggers first, in the same transaction as the backfill: no write falls between.
    for name, body in TRIGGERS.items():
        op.execute(sa.text(f"CREATE TRIGGER {name} {body}"))
    op.execute(
        sa.text(f"INSERT INTO {TABLE} (rowid, name) SELECT id, unicode_lower(name) FROM items")
    )


def downgrade() -> None:
    if online.is_postgresql():
        return
    for name in TRIGGERS:
        op.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))
    op.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
