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
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol, TypeVar

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.orm import Session

from catalog.models import Item, Tag, User, item_tags
from catalog.security import hash_password
from catalog.services.common import insert_ignoring_duplicates

DEMO_PASSWORD = "demo-password"
DEFAULT_BATCH_SIZE = 10_000
# From this many items into an empty table, PostgreSQL loads first and indexes after.
BULK_LOAD_MIN_ROWS = 50_000
YEAR = timedelta(days=365)
# Probability that an item has 0, 1, 2 or 3 tags (cumulative).
_TAG_COUNT_CDF = (0.25, 0.60, 0.85)
_INACTIVE_ITEM_SHARE = 0.10
_INACTIVE_USER_SHARE = 0.05
_NO_DESCRIPTION_SHARE = 0.15
# Prices are log-uniform between these (in cents): many cheap things, a few expensive ones.
_MIN_CENTS, _MAX_CENTS = 99, 2_500_000
NULL = "\\N"  # NULL in COPY's text format


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# The vocabularies never contain tabs, newlines or backslashes: rows built from them are
# valid COPY text without escaping (tests/test_seed.py checks it).
FIRST_NAMES = _words(
    "Ada Alan Alice Amara Anna Arjun Ben Bruno Carla Chen Chloe Dana David Diego Elena Emil "
    "Eva Farah Felix Grace Hana Hugo Ines Ivan Jade James Jonas Julia Kai Karin Lars Layla "
    "Leo Lina Luca Maya Mei Milan Mira Nadia Noah Nora Omar Oscar Paula Priya Rafael Rosa "
    "Sami Sara Sofia Tariq Theo Uma Victor Wen Yara Yusuf Zoe"
)
LAST_NAMES = _words(
    "Adams Alvarez Becker Bianchi Brown Costa Dubois Eriksen Fischer Garcia Hansen Ivanova "
    "Jensen Kim Kowalski Larsen Lopez Meyer Moreau Muller Nakamura Nguyen Novak Okafor Olsen "
    "Park Patel Perez Petrov Rossi Santos Schmidt Silva Singh Smith Tanaka Weber Wong Yilmaz "
    "Zhang"
)
ADJECTIVES = _words(
    "Compact Classic Deluxe Durable Elegant Ergonomic Essential Foldable Handmade Heavy-Duty "
    "Lightweight Minimalist Modern Portable Premium Refined Rugged Rustic Sleek Smart Solid "
    "Sturdy Vintage Waterproof Wireless Cozy Adjustable Quiet Bright Reusable"
)
MATERIALS = _words(
    "Aluminum Bamboo Brass Canvas Ceramic Copper Cotton Glass Granite Leather Linen Marble "
    "Oak Plastic Rubber Silicone Steel Walnut Wool Titanium"
)
NOUNS = _words(
    "Backpack Bench Blender Bottle Bowl Cabinet Camera Chair Clock Desk Drone Fan Headphones "
    "Helmet Jacket Kettle Keyboard Knife Lamp Laptop Stand Mat Mirror Monitor Mouse Mug "
    "Notebook Pan Pen Pillow Planter Printer Radio Rug Scale Shelf Shoes Sofa Speaker Table "
    "Tent Thermos Toaster Tray Umbrella Vase Wallet Watch Speakerphone Scooter Router"
)
FEATURES = (
    "built to last for years",
    "easy to clean",
    "designed for everyday use",
    "with a two-year warranty",
    "perfect for small spaces",
    "great as a gift",
    "tested by professionals",
    "made in small batches",
    "with a matte finish",
    "available while stocks last",
    "with replaceable parts",
    "that fits in any bag",
    "with an energy-saving mode",
    "assembled in minutes",
    "loved by our customers",
)
CLOSINGS = (
    "Ships within two days.",
    "Free returns within 30 days.",
    "Limited edition.",
    "Bestseller this season.",
    "Comes in a recyclable box.",
    "Includes a user guide.",
    "",
)
TAG_WORDS = _words(
    "accessories audio autumn bargain bath bedroom bestseller camping classic clearance "
    "coffee collectible cooking craft cycling decor desk digital eco electronics essentials "
    "family fashion fitness furniture garden gift gaming handmade health hiking home "
    "kids kitchen lighting limited local luxury minimalist music new office organic outdoor "
    "party pet photography portable premium refurbished retro running sale school "
    "seasonal sleep smart spring sports storage summer sustainable tech tools travel "
    "vintage waterproof wellness winter wireless workshop yoga"
)

UserRow = tuple[int, str, str, str | None, bool, datetime]
"""(id, email, hashed_password, full_name, is_active, created_at)"""
ItemRow = tuple[int, str, str | None, int, bool, datetime, int, tuple[int, ...]]
"""(id, name, description, price in cents, is_active, created_at, owner_id, tag ids)"""

T = TypeVar("T")


class SeedError(ValueError):
    """The seed cannot run as asked (e.g. items but no users to own them)."""


class ProgressSink(Protocol):
    """Receives progress per phase ("users", "items", "item tags")."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self, phase: str, rows: int) -> None: ...


class _NoProgress:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str, rows: int) -> None:
        pass


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


# --- generation (pure, deterministic) -------------------------------------------------------


def _rng(seed: int, stream: str) -> random.Random:
    # One independent stream per table: changing --items leaves the users and tags unchanged.
    # String seeds are hashed with SHA-512 by `random`, not with the salted str hash.
    return random.Random(f"catalog-seed:{seed}:{stream}")


def tag_names(count: int, seed: int) -> list[str]:
    """`count` distinct, normalized tag names: words first, then word pairs, then numbered."""
    rng = _rng(seed, "tags")
    words = list(TAG_WORDS)
    rng.shuffle(words)
    names = words[:count]
    pairs = (f"{a}-{b}" for a in words for b in words if a != b)
    while len(names) < count:
        pair = next(pairs, None)
        names.append(pair if pair is not None else f"{words[len(names) % len(words)]}-{len(names)}")
    return names


def generate_users(
    first_id: int, count: int, *, seed: int, hashed_password: str, as_of: datetime
) -> Iterator[UserRow]:
    """Users with realistic names; the id in the email keeps every email unique."""
    rng = _rng(seed, "users")
    r = rng.random
    year = YEAR.total_seconds()
    for user_id in range(first_id, first_id + count):
        first = FIRST_NAMES[int(r() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(r() * len(LAST_NAMES))]
        email = f"{first}.{last}.{user_id}@example.com".lower()
        created_at = as_of - timedelta(seconds=r() * year)
        yield (
            user_id,
            email,
            hashed_password,
            f"{first} {last}",
            r() >= _INACTIVE_USER_SHARE,
            created_at,
        )


def generate_items(
    first_id: int,
    count: int,
    *,
    seed: int,
    owner_ids: Sequence[int],
    tag_ids: Sequence[int],
    as_of: datetime,
) -> Iterator[ItemRow]:
    """Items spread over the year before `as_of` (later ids are newer), 0..3 distinct tags."""
    rng = _rng(seed, "items")
    r = rng.random  # local names: this loop runs a million times
    adjectives, materials, nouns = ADJECTIVES, MATERIALS, NOUNS
    features, closings = FEATURES, CLOSINGS
    n_adj, n_mat, n_noun, n_feat, n_close = map(
        len, (adjectives, materials, nouns, features, closings)
    )
    n_owners, n_tags = len(owner_ids), len(tag_ids)
    p0, p1, p2 = _TAG_COUNT_CDF
    log_lo, log_span = math.log(_MIN_CENTS), math.log(_MAX_CENTS) - math.log(_MIN_CENTS)
    exp = math.exp
    start = as_of - YEAR
    step = YEAR.total_seconds() / max(count, 1)
    for i in range(count):
        adjective = adjectives[int(r() * n_adj)]
        material = materials[int(r() * n_mat)]
        noun = nouns[int(r() * n_noun)]
        name = f"{adjective} {material} {noun}"
        if r() < 0.3:
            name = f"{name} {chr(65 + int(r() * 26))}{int(r() * 900) + 100}"
        description: str | None = None
        if r() >= _NO_DESCRIPTION_SHARE:
            description = (
                f"{adjective} {noun.lower()} in {material.lower()}, "
                f"{features[int(r() * n_feat)]}. {closings[int(r() * n_close)]}"
            ).rstrip()
        cents = int(exp(log_lo + r() * log_span))
        created_at = start + timedelta(seconds=(i + r()) * step)
        owner = owner_ids[int(r() * n_owners)]
        u = r()
        wanted = min(n_tags, 0 if u < p0 else 1 if u < p1 else 2 if u < p2 else 3)
        chosen: list[int] = []
        while len(chosen) < wanted:
            tag = tag_ids[int(r() * n_tags)]
            if tag not in chosen:
                chosen.append(tag)
        chosen.sort()
        yield (
            first_id + i,
            name,
            description,
            cents,
            r() >= _INACTIVE_ITEM_SHARE,
            created_at,
            owner,
            tuple(chosen),
        )


def _batched(rows: Iterable[T], size: int) -> Iterator[list[T]]:
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


# --- writing ------------------------------------------------------------------------------


class _Writer:
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
        raise NotImplementedError

    def write_items(self, rows: Iterable[ItemRow], count: int) -> int:
        """Insert the `count` items and their tag links; return the number of links."""
        raise NotImplementedError

    def _max_id(self, table: str) -> int:
        return int(self.connection.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}")) or 0)


class _SQLiteWriter(_Writer):
    def reserve_ids(self, table: str, count: int) -> int:
        # BEGIN IMMEDIATE holds the database's write lock, and SQLite numbers rows from max(id).
        return self._max_id(table) + 1

    def write_users(self, rows: Iterable[UserRow]) -> None:
        statement = insert(User)
        for batch in _batched(rows, self.batch_size):
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

    def write_items(self, rows: Iterable[ItemRow], count: int) -> int:
        items_insert, links_insert = insert(Item), insert(item_tags)
        links_total = 0
        for batch in _batched(rows, self.batch_size):
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


class _PostgresWriter(_Writer):
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
            for batch in _batched(rows, self.batch_size):
                copy.write(
                    "".join(
                        f"{user_id}\t{email}\t{hashed}\t"
                        f"{full_name if full_name is not None else NULL}\t"
                        f"{'t' if active else 'f'}\tf\t{created_at}\n"
                        for user_id, email, hashed, full_name, active, created_at in batch
                    )
                )
                self.progress.advance("users", len(batch))

    def write_items(self, rows: Iterable[ItemRow], count: int) -> int:
        rebuild = self._drop_indexes() if count >= BULK_LOAD_MIN_ROWS and self._empty() else []
        links = self._copy_items(rows)
        if rebuild:
            # Built once from sorted input, far cheaper than a million incremental updates
            # (the trigram GIN index above all), and FKs validated by one join each.
            self.progress.start("indexes", len(rebuild))
            self.connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
            for statement in rebuild:
                self.connection.execute(text(statement))
                self.progress.advance("indexes", 1)
        return links

    def _empty(self) -> bool:
        return not self.connection.scalar(text("SELECT EXISTS (SELECT 1 FROM items)"))

    def _drop_indexes(self) -> list[str]:
        """Drop the secondary indexes and foreign keys of the item tables; return their DDL.

        Only for a load into an empty table: the DROP locks out readers until the commit,
        which matters to nobody while there is nothing to read. It is all one transaction,
        so a failed seed also restores the indexes. Primary keys and unique indexes stay.
        """
        tables = "ARRAY['items'::regclass, 'item_tags'::regclass]"
        indexes = self.connection.execute(
            text(
                "SELECT format('DROP INDEX %I.%I', n.nspname, i.relname), pg_get_indexdef(i.oid) "
                "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_namespace n ON n.oid = i.relnamespace "
                f"WHERE x.indrelid = ANY({tables}) AND NOT x.indisunique"
            )
        ).all()
        foreign_keys = self.connection.execute(
            text(
                "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname), "
                "format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, "
                "pg_get_constraintdef(oid)) "
                f"FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY({tables})"
            )
        ).all()
        for drop, _ in [*foreign_keys, *indexes]:
            self.connection.execute(text(drop))
        return [create for _, create in [*indexes, *foreign_keys]]

    def _copy_items(self, rows: Iterable[ItemRow]) -> int:
        cursor = self._cursor()
        # One COPY stream for all items, so the server loads while we generate; the links
        # (small text) wait in memory for a second COPY, as one connection has one COPY.
        links = io.StringIO()
        links_total = 0
        copy_sql = (
            "COPY items (id, name, description, price, is_active, created_at, owner_id) FROM STDIN"
        )
        with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
            for batch in _batched(rows, self.batch_size):
                lines = []
                for item_id, name, description, cents, active, created_at, owner, tags in batch:
                    lines.append(
                        f"{item_id}\t{name}\t{description if description is not None else NULL}\t"
                        f"{cents // 100}.{cents % 100:02d}\t{'t' if active else 'f'}\t"
                        f"{created_at}\t{owner}\n"
                    )
                    for tag in tags:
                        links.write(f"{item_id}\t{tag}\n")
                    links_total += len(tags)
                copy.write("".join(lines))
                self.progress.advance("items", len(batch))
        self.progress.start("item tags", links_total)
        data = links.getvalue()
        chunk = 1 << 20
        with cursor.copy("COPY item_tags (item_id, tag_id) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for offset in range(0, len(data), chunk):
                part = data[offset : offset + chunk]
                copy.write(part)
                self.progress.advance("item tags", part.count("\n"))
        return links_total


def _writer(connection: Connection, batch_size: int, progress: ProgressSink) -> _Writer:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return _PostgresWriter(connection, batch_size, progress)
    if dialect == "sqlite":
        return _SQLiteWriter(connection, batch_size, progress)
    raise SeedError(f"seeding is not supported on {dialect}")


def _ensure_tags(connection: Connection, names: list[str]) -> tuple[list[int], int]:
    """Ids of the named tags, creating the missing ones; also how many were created."""
    created = 0
    ids: dict[str, int] = {}
    for chunk in _batched(names, 500):
        # RETURNING yields only the rows inserted (rowcount is -1 here on psycopg).
        insert = insert_ignoring_duplicates(
            connection.dialect.name, Tag, [{"name": name} for name in chunk]
        )
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
    progress = progress or _NoProgress()
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
            options.items,
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
    """Refresh the planner's statistics after a bulk load (PostgreSQL; no-op elsewhere)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE users, items, tags, item_tags"))


def count_rows(session: Session) -> dict[str, int]:
    """Rows per table, for the summary."""
    return {
        "users": session.scalar(select(func.count()).select_from(User)) or 0,
        "items": session.scalar(select(func.count()).select_from(Item)) or 0,
        "tags": session.scalar(select(func.count()).select_from(Tag)) or 0,
        "item_tags": session.scalar(select(func.count()).select_from(item_tags)) or 0,
    }
