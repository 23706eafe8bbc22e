"""Demo data: users, tags and items (0..3 tags each), generated from a seed and bulk-loaded.

Generation is deterministic: the same seed, counts and `as_of` give the same rows on a fresh
database (only the salted password hash differs between runs). Rows go in through the sync
session in batches: PostgreSQL streams them with COPY (one stream for all items), SQLite gets
`executemany` of Core inserts. Everything happens in the caller's transaction, so a failed
seed leaves nothing behind.

Ids are assigned here rather than by the database, because every item_tags row needs its
item's id and asking the database for a million generated ids back would cost a round trip
per batch and a lot of memory. The block of ids is reserved first: on PostgreSQL the tables
are locked against writers (readers are not blocked) and the id sequence is advanced past the
block, so later ordinary INSERTs continue after it; on SQLite the transaction already holds
the write lock (BEGIN IMMEDIATE) and SQLite itself numbers new rows from max(id) + 1.

Layout: `data` generates the rows (pure), `writers` loads them into each database, and this
module runs a seed and re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from catalog.db.types import upsert
from catalog.models import Tag, User
from catalog.progress import NoProgress, ProgressSink
from catalog.security import hash_password
from catalog.seed.data import (
    ADJECTIVES,
    CLOSINGS,
    FEATURES,
    FIRST_NAMES,
    LAST_NAMES,
    MATERIALS,
    NOUNS,
    TAG_WORDS,
    YEAR,
    ItemRow,
    UserRow,
    generate_items,
    generate_users,
    tag_names,
)
from catalog.seed.writers import NULL, Writer, batched, writer_class

__all__ = [
    "ADJECTIVES",
    "BULK_LOAD_MIN_ROWS",
    "CLOSINGS",
    "DEFAULT_BATCH_SIZE",
    "DEMO_PASSWORD",
    "FEATURES",
    "FIRST_NAMES",
    "LAST_NAMES",
    "MATERIALS",
    "NOUNS",
    "NULL",
    "TAG_WORDS",
    "YEAR",
    "ItemRow",
    "ProgressSink",
    "SeedError",
    "SeedOptions",
    "SeedReport",
    "UserRow",
    "analyze",
    "generate_items",
    "generate_users",
    "seed_database",
    "tag_names",
]

DEMO_PASSWORD = "demo-password"
DEFAULT_BATCH_SIZE = 10_000
# From this many items into an empty table, PostgreSQL loads first and indexes after.
BULK_LOAD_MIN_ROWS = 50_000


class SeedError(ValueError):
    """The seed cannot run as asked (e.g. items but no users to own them)."""


@dataclass(frozen=True)
class SeedOptions:
    """How much to generate, from which seed, and the end of the one-year time window."""

    users: int
    items: int
    tags: int
    seed: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    as_of: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("users", "items", "tags"):
            if getattr(self, name) < 0:
                raise SeedError(f"--{name} must be >= 0")
        if self.batch_size < 1:
            raise SeedError("--batch-size must be >= 1")
        if self.as_of is not None and self.as_of.tzinfo is None:
            raise SeedError("as_of must be timezone-aware")

    def window_end(self) -> datetime:
        """`as_of`, or else the start of the current UTC day (stable within a day)."""
        if self.as_of is not None:
            return self.as_of.astimezone(UTC)
        return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class SeedReport:
    """What the seed inserted."""

    users: int
    items: int
    item_tags: int
    tags_created: int
    tags_used: int
    first_user_id: int | None
    first_item_id: int | None
    password: str


def _writer(connection: Connection, batch_size: int, progress: ProgressSink) -> Writer:
    return writer_class(connection)(connection, batch_size, progress)


def _ensure_tags(connection: Connection, names: list[str]) -> tuple[list[int], int]:
    """Ids of the named tags, creating the missing ones; also how many were created."""
    created = 0
    ids: dict[str, int] = {}
    for chunk in batched(names, 500):
        # RETURNING yields only the rows inserted (rowcount is -1 here on psycopg).
        insert = upsert(Tag).values([{"name": name} for name in chunk]).on_conflict_do_nothing()
        created += len(connection.execute(insert.returning(Tag.id)).all())
        rows = connection.execute(select(Tag.name, Tag.id).where(Tag.name.in_(chunk)))
        for name, tag_id in rows:
            ids[name] = tag_id
    return [ids[name] for name in names], created


def seed_database(
    session: Session,
    options: SeedOptions,
    *,
    progress: ProgressSink | None = None,
    hashed_password: str | None = None,
) -> SeedReport:
    """Insert demo users, tags and items in the session's transaction (the caller commits).

    Every seeded user gets the same password, `DEMO_PASSWORD`, hashed once. Existing tags
    with a generated name are reused. With `users=0` the items go to existing users.
    """
    progress = progress or NoProgress()
    connection = session.connection()
    writer = _writer(connection, options.batch_size, progress)
    as_of = options.window_end()
    writer.lock()

    first_user: int | None = None
    if options.users:
        first_user = writer.reserve_ids("users", options.users)
        progress.start("users", options.users)
        writer.write_users(
            generate_users(
                first_user,
                options.users,
                seed=options.seed,
                hashed_password=hashed_password or hash_password(DEMO_PASSWORD),
                as_of=as_of,
            )
        )

    tag_ids, tags_created = _ensure_tags(connection, tag_names(options.tags, options.seed))

    first_item: int | None = None
    links = 0
    if options.items:
        owners: Sequence[int]
        if first_user is not None:
            owners = range(first_user, first_user + options.users)
        else:
            owners = list(connection.scalars(select(User.id).order_by(User.id)))
        if not owners:
            raise SeedError("items need owners: there are no users, pass --users N")
        first_item = writer.reserve_ids("items", options.items)
        progress.start("items", options.items)
        links = writer.write_items(
            generate_items(
                first_item,
                options.items,
                seed=options.seed,
                owner_ids=owners,
                tag_ids=tag_ids,
                as_of=as_of,
            ),
            # The threshold is the package's policy (tests lower it on `catalog.seed`).
            bulk_load=options.items >= BULK_LOAD_MIN_ROWS,
        )
    session.flush()
    return SeedReport(
        users=options.users,
        items=options.items,
        item_tags=links,
        tags_created=tags_created,
        tags_used=len(tag_ids),
        first_user_id=first_user,
        first_item_id=first_item,
        password=DEMO_PASSWORD,
    )


def analyze(connection: Connection) -> None:
    """Refresh the planner's statistics after a bulk load (where the database keeps any)."""
    writer_class(connection).analyze(connection)
