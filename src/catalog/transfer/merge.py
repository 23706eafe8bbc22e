"""Writing validated records: staged in temporary tables, merged into the real ones by key.

Each batch is bulk-loaded into a temporary table (COPY on PostgreSQL, `executemany` on
SQLite) and merged by a few set-based statements, the same SQL on both databases:

- users: INSERT ... ON CONFLICT (email) DO UPDATE. A record without a password hash leaves
  an existing user's password alone; a new user gets an unusable one (the hash of a random
  secret nobody knows: `catalog users set-password` gives them a real one).
- tags: INSERT ... ON CONFLICT (name) DO NOTHING.
- items: first checked (every owner exists; an item whose id exists must be *the same item*,
  i.e. have the same created_at, or the import stops rather than overwrite an unrelated
  item), then INSERT ... ON CONFLICT (id) DO UPDATE; the tags they name are created, the
  links they no longer name deleted and the missing ones inserted.

An update happens only where a value differs, so importing a file whose rows are already in
the database writes nothing at all: updated_at, the rows and their tags stay as they are.
The file's values win, updated_at included (it is a restore, not an edit).

Items imported into an empty items table are loaded before the secondary indexes (and on
PostgreSQL the foreign keys) of items and item_tags are built (`catalog.db.bulk`): two to
several times faster for a restore. On PostgreSQL readers of those tables then wait until
the import commits, when there was nothing to read anyway.

Items keep their ids. On PostgreSQL the sequence did not hand those out, so the items table
is locked against other writers for the whole import (SHARE ROW EXCLUSIVE: readers go on)
and `finish` moves the sequence past the largest id; later API inserts continue after it.
On SQLite the transaction holds the write lock (BEGIN IMMEDIATE) and AUTOINCREMENT
continues after the largest id by itself. Everything runs in the caller's transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    bindparam,
    case,
    delete,
    exists,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.sql import Select
from sqlalchemy.types import TypeEngine

from catalog.db.bulk import (
    advance_ids,
    drop_secondary_indexes,
    hold_ids,
    rebuild_indexes,
    replace_rows,
)
from catalog.db.types import upsert
from catalog.models import Item, Tag, User, item_tags
from catalog.progress import ProgressSink
from catalog.security import hash_password
from catalog.transfer.records import FIELDS, ItemRecord, Kind, LineError, Record

users, items, tags = (cast(Table, model.__table__) for model in (User, Item, Tag))

_staging = MetaData()


def _staging_table(name: str, columns: dict[str, TypeEngine[Any]]) -> Table:
    """A temporary table: the record's line number, then columns typed as the real ones."""
    return Table(
        name,
        _staging,
        Column("line", Integer),
        *(Column(column, type_) for column, type_ in columns.items()),
        prefixes=["TEMPORARY"],
    )


STAGED_USERS = _staging_table(
    "transfer_users", {name: users.c[name].type for name in FIELDS[Kind.USER]}
)
STAGED_TAGS = _staging_table("transfer_tags", {"name": tags.c.name.type})
STAGED_ITEMS = _staging_table(
    "transfer_items",
    {
        name: (users.c.email if name == "owner" else items.c[name]).type
        for name in FIELDS[Kind.ITEM]
        if name != "tags"
    },
)
STAGED_LINKS = Table(
    "transfer_item_tags",
    _staging,
    # The key serves the lookups of the links to keep: without it SQLite scans the batch's
    # links once per existing link (seconds per batch when re-importing).
    Column("item_id", Integer, primary_key=True),
    Column("name", tags.c.name.type, primary_key=True),
    prefixes=["TEMPORARY"],
)
STAGED: dict[Kind, Table] = {
    Kind.USER: STAGED_USERS,
    Kind.TAG: STAGED_TAGS,
    Kind.ITEM: STAGED_ITEMS,
}


def _values_getter(table: Table) -> Callable[[Record], tuple[Any, ...]]:
    """A record's values for its staging table's columns after `line`, as a tuple."""
    get = attrgetter(*table.columns.keys()[1:])
    return get if len(table.columns) > 2 else lambda record: (get(record),)


_STAGED_VALUES = {kind: _values_getter(table) for kind, table in STAGED.items()}


@dataclass
class Written:
    """Rows the import inserted or changed (rows already equal are not counted)."""

    users: int = 0
    tags: int = 0
    items: int = 0
    item_tags: int = 0


def _where_any_differs(table: Table, excluded: Any, columns: Sequence[str]) -> Any:
    return or_(*(table.c[name].is_distinct_from(excluded[name]) for name in columns))


class Merger:
    """Merges batches of validated records into the database, in the caller's transaction."""

    def __init__(self, connection: Connection, progress: ProgressSink) -> None:
        self.connection = connection
        self.progress = progress
        self.insert = upsert
        self.written = Written()
        self._unusable_hash: str | None = None
        self._items_started = False
        self._rebuild: list[str] = []
        for table in (*STAGED.values(), STAGED_LINKS):
            table.create(connection)
        # Keep the API from taking, meanwhile, an id this import inserts explicitly.
        hold_ids(connection, "items")

    def write(self, kind: Kind, batch: Sequence[tuple[int, Record]]) -> None:
        """Stage and merge one batch of records of one kind (with their line numbers)."""
        values = _STAGED_VALUES[kind]
        self._stage(STAGED[kind], [(line, *values(record)) for line, record in batch])
        if kind is Kind.USER:
            self._merge_users()
        elif kind is Kind.TAG:
            self._merge_tags()
        else:
            if not self._items_started:
                self._start_items()
            records = [record for _, record in batch if isinstance(record, ItemRecord)]
            self._stage(STAGED_LINKS, [(r.id, name) for r in records for name in r.tags])
            self._merge_items(records[0].id, records[-1].id)

    def finish(self) -> Written:
        """Rebuild dropped indexes, move the item id sequence on, drop the staging tables."""
        if self._rebuild:
            rebuild_indexes(self.connection, self._rebuild, self.progress)
        advance_ids(self.connection, "items")
        for table in (*STAGED.values(), STAGED_LINKS):
            table.drop(self.connection)
        return self.written

    def _start_items(self) -> None:
        self._items_started = True
        if self.connection.scalar(select(~exists().select_from(items))):
            # A restore into an empty catalog: load first, index after (`catalog.db.bulk`).
            self._rebuild = drop_secondary_indexes(self.connection, ("items", "item_tags"))

    # --- staging -------------------------------------------------------------------------

    def _stage(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Replace the staging table's rows with `rows` (tuples in column order)."""
        replace_rows(self.connection, table, rows)

    def _rows(self, statement: Any, **params: Any) -> int:
        """Run `statement`; return the rows it inserted, changed or deleted."""
        options = {"preserve_rowcount": True}  # SQLAlchemy keeps it for UPDATE/DELETE only
        return int(self.connection.execute(statement, params, execution_options=options).rowcount)

    def _first_line(self, query: Select[Any]) -> Any:
        return self.connection.execute(query.limit(1)).first()

    # --- merges --------------------------------------------------------------------------

    def _merge_users(self) -> None:
        s = STAGED_USERS
        has_hash = s.c.hashed_password.is_not(None)
        self.written.users += self._rows(self._upsert_users(with_password=True))
        if self._first_line(select(s.c.line).where(~has_hash)) is not None:
            self.written.users += self._rows(
                self._upsert_users(with_password=False), unusable=self._unusable_password()
            )

    def _upsert_users(self, *, with_password: bool) -> Any:
        s = STAGED_USERS
        kept = ["full_name", "is_active", "is_superuser", "created_at"]
        password = (
            s.c.hashed_password
            if with_password
            else bindparam("unusable", type_=users.c.hashed_password.type)
        )
        source = select(s.c.email, password, *(s.c[name] for name in kept)).where(
            s.c.hashed_password.is_not(None) if with_password else s.c.hashed_password.is_(None)
        )
        statement = self.insert(users).from_select(["email", "hashed_password", *kept], source)
        updated = [*kept, "hashed_password"] if with_password else kept
        values: dict[str, Any] = {name: statement.excluded[name] for name in updated}
        if with_password:  # another password ends the account's sessions (models.User)
            same = users.c.hashed_password == statement.excluded.hashed_password
            values["stamp_basis"] = case((same, users.c.stamp_basis), else_=null())
        return statement.on_conflict_do_update(
            index_elements=[users.c.email],
            set_=values,
            where=_where_any_differs(users, statement.excluded, updated),
        )

    def _unusable_password(self) -> str:
        if self._unusable_hash is None:
            self._unusable_hash = hash_password(secrets.token_urlsafe(32))
        return self._unusable_hash

    def _merge_tags(self) -> None:
        source = select(STAGED_TAGS.c.name).where(true())
        self.written.tags += self._insert_tags(source)

    def _insert_tags(self, source: Select[Any]) -> int:
        statement = self.insert(tags).from_select(["name"], source)
        return self._rows(statement.on_conflict_do_nothing(index_elements=[tags.c.name]))

    def _merge_items(self, first_id: int, last_id: int) -> None:
        """Check, upsert and link the staged items, whose ids all lie in [first_id, last_id]."""
        # The id range keeps the lookups of existing rows to an index range scan: the
        # planner would otherwise hash-join each batch with the whole, growing, table.
        self._check_items(items.c.id.between(first_id, last_id))
        self._upsert_items()
        self._link_tags(item_tags.c.item_id.between(first_id, last_id))

    def _check_items(self, in_batch: Any) -> None:
        s = STAGED_ITEMS
        unknown = self._first_line(
            select(s.c.line, s.c.owner)
            .where(~exists().where(users.c.email == s.c.owner))
            .order_by(s.c.line)
        )
        if unknown is not None:
            raise LineError(unknown.line, f"owner: no user {unknown.owner} in the file or database")
        different = self._first_line(
            select(s.c.line, s.c.id)
            .join(items, items.c.id == s.c.id)
            .where(in_batch, items.c.created_at != s.c.created_at)
            .order_by(s.c.line)
        )
        if different is not None:
            raise LineError(
                different.line,
                f"id: item {different.id} exists in the database with another created_at: "
                "it is a different item, which this import would overwrite",
            )

    def _upsert_items(self) -> None:
        s = STAGED_ITEMS
        columns = [name for name in FIELDS[Kind.ITEM] if name not in {"owner", "tags"}]
        source = select(*(s.c[name] for name in columns), users.c.id).join(
            users, users.c.email == s.c.owner
        )
        statement = self.insert(items).from_select([*columns, "owner_id"], source.where(true()))
        changed = [*columns[1:], "owner_id"]
        self.written.items += self._rows(
            statement.on_conflict_do_update(
                index_elements=[items.c.id],
                set_={name: statement.excluded[name] for name in changed},
                where=_where_any_differs(items, statement.excluded, changed),
            )
        )

    def _link_tags(self, in_batch: Any) -> None:
        """Create the tags the items name; replace each item's links by the named ones."""
        links = STAGED_LINKS
        self.written.tags += self._insert_tags(select(links.c.name).distinct().where(true()))
        named = (
            select(1)
            .select_from(links.join(tags, tags.c.name == links.c.name))
            .where(links.c.item_id == item_tags.c.item_id, tags.c.id == item_tags.c.tag_id)
        )
        self.written.item_tags += self._rows(
            delete(item_tags).where(
                in_batch, item_tags.c.item_id.in_(select(STAGED_ITEMS.c.id)), ~named.exists()
            )
        )
        linked = select(links.c.item_id, tags.c.id).join(tags, tags.c.name == links.c.name)
        self.written.item_tags += self._rows(
            self.insert(item_tags)
            .from_select(["item_id", "tag_id"], linked.where(true()))
            .on_conflict_do_nothing()
        )
