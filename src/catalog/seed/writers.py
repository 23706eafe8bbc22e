"""Bulk loading of generated rows, one writer per database, inside the caller's transaction.

SQLite gets `executemany` of Core inserts in batches; PostgreSQL streams rows with COPY and,
for a large load into an empty table, drops the secondary indexes and foreign keys first and
rebuilds them after (`catalog.db.bulk`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import Connection, insert, text

from catalog.db.backends import backend_of
from catalog.db.bulk import drop_secondary_indexes, rebuild_indexes
from catalog.models import Item, User, item_tags
from catalog.progress import ProgressSink
from catalog.seed.data import ItemRow, UserRow

NULL = "\\N"  # NULL in COPY's text format
SYNC_TRIGGER = "item_tags_sync_insert"  # keeps items.tag_ids in step (migration 0007)
COPY_TRIGGER = "item_tags_copy_item"  # copies the item's price and is_active (0015)

T = TypeVar("T")


def batched(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """`rows` in lists of `size` (the last one shorter)."""
    batch: list[T] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _cents_to_decimal(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


class Writer:
    """Backend-specific bulk loading; both run inside the session's transaction."""

    def __init__(self, connection: Connection, batch_size: int, progress: ProgressSink) -> None:
        self.connection = connection
        self.batch_size = batch_size
        self.progress = progress

    def lock(self) -> None:
        """Keep other writers out of the id blocks we are about to reserve."""

    def reserve_ids(self, table: str, count: int) -> int:
        """Reserve `count` consecutive ids in `table`; return the first."""
        raise NotImplementedError

    def write_users(self, rows: Iterable[UserRow]) -> None:
        """Insert the users (ids already reserved)."""
        raise NotImplementedError

    def write_items(self, rows: Iterable[ItemRow], *, bulk_load: bool) -> int:
        """Insert the items and their tag links; return the number of links.

        `bulk_load` says the load is large enough to be worth indexing afterwards; a writer
        may ignore it.
        """
        raise NotImplementedError

    @staticmethod
    def analyze(connection: Connection) -> None:
        """Refresh the planner's statistics after a bulk load, where the database keeps any."""

    def _max_id(self, table: str) -> int:
        return int(self.connection.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}")) or 0)


class SQLiteWriter(Writer):
    """Batches of Core inserts (`executemany`)."""

    def reserve_ids(self, table: str, count: int) -> int:
        # BEGIN IMMEDIATE holds the database's write lock, and SQLite numbers rows from max(id).
        return self._max_id(table) + 1

    def write_users(self, rows: Iterable[UserRow]) -> None:
        statement = insert(User)
        for batch in batched(rows, self.batch_size):
            self.connection.execute(
                statement,
                [
                    {
                        "id": user_id,
                        "email": email,
                        "hashed_password": hashed,
                        "full_name": full_name,
                        "is_active": active,
                        "is_superuser": False,
                        "created_at": created_at,
                    }
                    for user_id, email, hashed, full_name, active, created_at in batch
                ],
            )
            self.progress.advance("users", len(batch))

    def write_items(self, rows: Iterable[ItemRow], *, bulk_load: bool) -> int:
        items_insert, links_insert = insert(Item), insert(item_tags)
        links_total = 0
        for batch in batched(rows, self.batch_size):
            self.connection.execute(
                items_insert,
                [
                    {
                        "id": item_id,
                        "name": name,
                        "description": description,
                        "price": _cents_to_decimal(cents),
                        "is_active": active,
                        "created_at": created_at,
                        "owner_id": owner,
                    }
                    for item_id, name, description, cents, active, created_at, owner, _ in batch
                ],
            )
            links = [{"item_id": row[0], "tag_id": tag} for row in batch for tag in row[7]]
            if links:
                self.connection.execute(links_insert, links)
            links_total += len(links)
            self.progress.advance("items", len(batch))
        return links_total


class PostgresWriter(Writer):
    """COPY streams; a large load into empty tables indexes afterwards."""

    @staticmethod
    def analyze(connection: Connection) -> None:
        connection.execute(text("ANALYZE users, items, tags, item_tags"))

    def lock(self) -> None:
        # SHARE ROW EXCLUSIVE: readers go on, writers (and another seed) wait for our commit,
        # so nobody takes an id from the blocks reserved below.
        self.connection.execute(text("LOCK TABLE users, items IN SHARE ROW EXCLUSIVE MODE"))

    def reserve_ids(self, table: str, count: int) -> int:
        sequence = f"pg_get_serial_sequence('{table}', 'id')"
        next_value = int(self.connection.scalar(text(f"SELECT nextval({sequence})")) or 1)
        # max(id) too, in case rows were ever inserted with explicit ids behind the sequence.
        first = max(next_value, self._max_id(table) + 1)
        if count:
            self.connection.execute(
                text(f"SELECT setval({sequence}, :last)"), {"last": first + count - 1}
            )
        return first

    def _cursor(self) -> object:
        # The psycopg connection under the session's connection: same transaction.
        return self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def write_users(self, rows: Iterable[UserRow]) -> None:
        cursor = self._cursor()
        copy_sql = (
            "COPY users (id, email, hashed_password, full_name, is_active, is_superuser, "
            "created_at) FROM STDIN"
        )
        with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
            for batch in batched(rows, self.batch_size):
                copy.write(
                    "".join(
                        f"{user_id}\t{email}\t{hashed}\t"
                        f"{full_name if full_name is not None else NULL}\t"
                        f"{'t' if active else 'f'}\tf\t{created_at}\n"
                        for user_id, email, hashed, full_name, active, created_at in batch
                    )
                )
                self.progress.advance("users", len(batch))

    def write_items(self, rows: Iterable[ItemRow], *, bulk_load: bool) -> int:
        tables = ("items", "item_tags")
        rebuild = (
            drop_secondary_indexes(self.connection, tables) if bulk_load and self._empty() else []
        )
        links = self._copy_items(rows)
        if rebuild:
            rebuild_indexes(self.connection, rebuild, self.progress)
        return links

    def _empty(self) -> bool:
        return not self.connection.scalar(text("SELECT EXISTS (SELECT 1 FROM items)"))

    def _copy_items(self, rows: Iterable[ItemRow]) -> int:
        cursor = self._cursor()
        # One COPY stream for all items, so the server loads while we generate; the links
        # (small text) wait in memory for a second COPY, as one connection has one COPY.
        links = io.StringIO()
        links_total = 0
        copy_sql = (
            "COPY items (id, name, description, price, is_active, created_at, owner_id, tag_ids)"
            " FROM STDIN"
        )
        with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
            for batch in batched(rows, self.batch_size):
                lines = []
                for item_id, name, description, cents, active, created_at, owner, tags in batch:
                    price_active = f"{cents // 100}.{cents % 100:02d}\t{'t' if active else 'f'}"
                    lines.append(
                        f"{item_id}\t{name}\t{description if description is not None else NULL}\t"
                        f"{price_active}\t"
                        f"{created_at}\t{owner}\t{{{','.join(map(str, sorted(tags)))}}}\n"
                    )
                    for tag in tags:
                        links.write(f"{item_id}\t{tag}\t{price_active}\n")
                    links_total += len(tags)
                copy.write("".join(lines))
                self.progress.advance("items", len(batch))
        self.progress.start("item tags", links_total)
        data = links.getvalue()
        chunk = 1 << 20
        # The items' tag_ids were written with them, and the links' copies of price and
        # is_active are written here: the triggers that keep both in step would rewrite
        # every new item once more (doubling the table) and lock each link's item.
        # These items are new and the tables locked, so nothing else can link to them.
        triggers = (SYNC_TRIGGER, COPY_TRIGGER)
        for trigger in triggers:
            self.connection.execute(text(f"ALTER TABLE item_tags DISABLE TRIGGER {trigger}"))
        copy_sql = "COPY item_tags (item_id, tag_id, price, is_active) FROM STDIN"
        with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
            for offset in range(0, len(data), chunk):
                part = data[offset : offset + chunk]
                copy.write(part)
                self.progress.advance("item tags", part.count("\n"))
        for trigger in triggers:
            self.connection.execute(text(f"ALTER TABLE item_tags ENABLE TRIGGER {trigger}"))
        return links_total


WRITERS: dict[str, type[Writer]] = {"postgresql": PostgresWriter, "sqlite": SQLiteWriter}
"""Writer class per backend name (`Backend.name`)."""


def writer_class(connection: Connection) -> type[Writer]:
    """The bulk writer for the connection's backend (chosen once per seed)."""
    return WRITERS[backend_of(connection).name]
