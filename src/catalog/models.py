"""ORM models: the schema's single source of truth (migrations are checked against it).

Relationships are `lazy="raise"`: nothing may load behind the code's back, so an
async request can neither hit `MissingGreenlet` nor fall into an N+1 query.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    column,
    false,
    table,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.db.base import Base
from catalog.db.types import INT_LIST, UTCDateTime, code_point_string, empty_int_list, utcnow

EMAIL_MAX_LENGTH = 320
PASSWORD_HASH_MAX_LENGTH = 255
ITEM_NAME_MAX_LENGTH = 200
ITEM_DESCRIPTION_MAX_LENGTH = 2000
TAG_NAME_MAX_LENGTH = 50
PRICE_PRECISION, PRICE_SCALE = 12, 2
# Ids are 32-bit INTEGER columns; PostgreSQL raises on a larger literal rather than
# finding nothing, so out-of-range ids are answered as "no such row" before any SQL.
MAX_ID = 2**31 - 1


def is_valid_id(value: int) -> bool:
    """Whether `value` can be the primary key of a row."""
    return 0 < value <= MAX_ID


item_tags = Table(
    "item_tags",
    Base.metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    # The primary key serves "tags of an item"; this one serves "items with a tag".
    Index("ix_item_tags_tag_id_item_id", "tag_id", "item_id"),
)


class User(Base):
    """An account. Emails are stored lower-cased, so uniqueness is case-insensitive."""

    __tablename__ = "users"
    # Never reuse an id (SQLite would hand out max(id)+1 again, and a deleted user's
    # unexpired token would name the next account). PostgreSQL sequences never reuse.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(code_point_string(EMAIL_MAX_LENGTH), unique=True, index=True)
    hashed_password: Mapped[str] = mapped_column(String(PASSWORD_HASH_MAX_LENGTH))
    # The hash that tokens' credential stamps are made from, when the password was re-hashed
    # (new argon2 parameters) since it was set; NULL: `hashed_password` itself. A re-hash
    # keeps every session; setting a password clears it, which ends them.
    stamp_basis: Mapped[str | None] = mapped_column(String(PASSWORD_HASH_MAX_LENGTH))
    full_name: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    is_superuser: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())
    # Incremented by every update: the ETag, and the If-Match check in the update's WHERE.
    version: Mapped[int] = mapped_column(server_default=text("1"))
    # Incremented by an admin logout: admin sessions signed in before it are refused.
    admin_sessions: Mapped[int] = mapped_column(server_default=text("0"))

    items: Mapped[list[Item]] = relationship(
        back_populates="owner", lazy="raise", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, email={self.email!r})"


class Item(Base):
    """Something a user owns, with a price and any number of tags."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_non_negative"),
        # intarray's operators refuse arrays with NULLs (migration 0007 validates it online).
        CheckConstraint("array_position(tag_ids, NULL) IS NULL", name="tag_ids_no_nulls").ddl_if(
            dialect="postgresql"
        ),
        # (column, id): every sort order ends in id, so a keyset page is one range scan.
        Index("ix_items_name_id", "name", "id"),
        Index("ix_items_price_id", "price", "id"),
        Index("ix_items_updated_at_id", "updated_at", "id"),
        Index("ix_items_owner_id_id", "owner_id", "id"),
        {"sqlite_autoincrement": True},  # ids are never reused, as on PostgreSQL
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(code_point_string(ITEM_NAME_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(PRICE_PRECISION, PRICE_SCALE))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=utcnow())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Incremented by every change to the item or its tags: the ETag, and the If-Match
    # check in the write's own WHERE (optimistic concurrency).
    version: Mapped[int] = mapped_column(server_default=text("1"))
    # The ids of the item's tags, ascending: a copy of item_tags (the truth) kept exact by
    # triggers on item_tags (migration 0007), for one-probe tag filters. Never written here.
    tag_ids: Mapped[list[int]] = mapped_column(
        INT_LIST, server_default=empty_int_list(), deferred=True
    )

    owner: Mapped[User] = relationship(back_populates="items", lazy="raise")
    tags: Mapped[list[Tag]] = relationship(
        secondary=item_tags, back_populates="items", lazy="raise", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Item(id={self.id!r}, name={self.name!r})"


# Kept by triggers on PostgreSQL alone, with no model: no statement of the service writes
# them, SQLite answers the same lists through its own indexes, and the drift check leaves
# them to their migrations and tests.
# - Substring search (`q`): items.name_folded, the name lower-cased, its trigram index and
#   its NOT NULL check (migration 0014; SQLite: its index of folded names, 0011).
# - One tag's items by price: item_tags.price and is_active, copies of the item's, their
#   CHECK and the index (tag_id, price, item_id) INCLUDE (is_active) (0015).
UNMODELLED_ON_POSTGRESQL = frozenset(
    {
        "name_folded",
        "ix_items_name_folded_trgm",
        "ck_items_name_folded_not_null",
        "ix_item_tags_tag_id_price_item_id",
        "ck_item_tags_copies_not_null",
    }
)
UNMODELLED_LINK_COLUMNS = frozenset({"price", "is_active"})  # of item_tags (0015)
# The same table for the statements that read those copies (PostgreSQL only).
tag_links = table(
    "item_tags",
    column("item_id", Integer),
    column("tag_id", Integer),
    column("price", Numeric(PRICE_PRECISION, PRICE_SCALE)),
    column("is_active", Boolean),
)


# "Carries all these tags" on PostgreSQL: tag_ids @> ARRAY[...] in one probe, with the
# built-in array operators, whose GIN scans skip through long posting lists (0016).
Index(
    "ix_items_tag_ids_array",
    Item.tag_ids,
    postgresql_using="gin",
    postgresql_ops={"tag_ids": "array_ops"},
    info={"postgresql_only": True},
).ddl_if(dialect="postgresql")


# Sorts led by the nullable updated_at (migration 0008): most items are never updated, so
# the NULL group is nearly the table and must come out of an index already in order.
for _name, _columns in (
    ("ix_items_updated_at_desc_id", (Item.updated_at.desc().nulls_first(), Item.id)),
    ("ix_items_updated_at_name_id", (Item.updated_at, Item.name, Item.id)),
    (
        "ix_items_updated_at_desc_name_id",
        (Item.updated_at.desc().nulls_first(), Item.name, Item.id),
    ),
):
    Index(_name, *_columns, info={"postgresql_only": True}).ddl_if(dialect="postgresql")
# Price-sorted pages filtered by tags and is_active, and narrow price ranges sorted by name,
# as index-only scans (migrations 0009, 0013).
Index(
    "ix_items_price_id_covering",
    Item.price,
    Item.id,
    postgresql_include=["is_active", "tag_ids", "name"],
    info={"postgresql_only": True},
).ddl_if(dialect="postgresql")
# Creation ranges, and on PostgreSQL narrow ones sorted by price or name (0002, 0013).
Index(
    "ix_items_created_at_id_covering",
    Item.created_at,
    Item.id,
    postgresql_include=["price", "name"],
    info={"postgresql_only": True},
).ddl_if(dialect="postgresql")
Index("ix_items_created_at_id", Item.created_at, Item.id, info={"sqlite_only": True}).ddl_if(
    dialect="sqlite"
)
# One owner's items by price (0013).
Index(
    "ix_items_owner_id_price_id",
    Item.owner_id,
    Item.price,
    Item.id,
    info={"postgresql_only": True},
).ddl_if(dialect="postgresql")


class Tag(Base):
    """A label; names are normalized (stripped, lower-cased) before they reach the table."""

    __tablename__ = "tags"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids are never reused, as on PostgreSQL

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(code_point_string(TAG_NAME_MAX_LENGTH), unique=True)

    items: Mapped[list[Item]] = relationship(
        secondary=item_tags, back_populates="tags", lazy="raise", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Tag(id={self.id!r}, name={self.name!r})"


IDEMPOTENCY_KEY_MAX_LENGTH = 255


class IdempotencyKey(Base):
    """A client's Idempotency-Key and the response its write produced.

    Stored in the write's own transaction: a retry finds either nothing (the write did
    not happen) or the response (it did). `scope` is whose key it is ("user:<id>", or
    "anonymous" for registration); the primary key makes concurrent duplicates collide in
    the database.
    """

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX_LENGTH), primary_key=True)
    # sha256 of the method, path and validated body: the same key with another request
    # is refused rather than answered with the first request's response.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response_body: Mapped[str] = mapped_column(Text)
    response_headers: Mapped[str] = mapped_column(Text)  # JSON object
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    def __repr__(self) -> str:
        return f"IdempotencyKey(scope={self.scope!r}, key={self.key!r})"


class LoginFailure(Base):
    """Recent failed logins of one account or one client address (login throttling).

    `key` is a digest of the scope and the email or address, so the table never holds
    what attackers typed and its rows have a fixed size. Shared by every worker and
    process; rows idle longer than the failure window are purged.
    """

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    def __repr__(self) -> str:
        return f"LoginFailure(scope={self.scope!r}, failures={self.failures!r})"
