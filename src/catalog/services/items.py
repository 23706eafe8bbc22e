"""Items: create, read, list, update and delete, with their tag sets.

Reads are single statements: each item row carries its tag names through a correlated
aggregate subquery, so a page costs one statement whatever its size and a LIMIT counts
items, not joined item x tag rows. They are precompiled `ReadQuery`s run outside any
transaction; writes run in the request's unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, Select, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from catalog.db.reads import ReadQuery
from catalog.db.session import Database
from catalog.db.types import string_agg_list, utcnow
from catalog.errors import NotFoundError, PermissionDeniedError
from catalog.models import Item, Tag, User, item_tags
from catalog.schemas import ItemCreate
from catalog.services.common import is_valid_id
from catalog.services.tags import replace_item_tags

ITEM_NOT_FOUND = "Item not found"


class ItemOut(TypedDict):
    """An item as the API returns it (price as a JSON number, tags sorted)."""

    id: int
    name: str
    description: str | None
    price: float
    is_active: bool
    created_at: datetime
    updated_at: datetime | None
    owner_id: int
    tags: list[str]


ITEM_COLUMNS = (
    Item.id,
    Item.name,
    Item.description,
    Item.price,
    Item.is_active,
    Item.created_at,
    Item.updated_at,
    Item.owner_id,
)


def _tag_names(
    item_id: ColumnElement[int] | QueryableAttribute[int] | int,
) -> Select[tuple[list[str]]]:
    return (
        select(string_agg_list(Tag.name))
        .select_from(item_tags.join(Tag, Tag.id == item_tags.c.tag_id))
        .where(item_tags.c.item_id == item_id)
    )


def tag_names_column(items: Any = Item) -> ColumnElement[list[str]]:
    """The tag names of each row of `items` (the table, or a subquery with an id column)."""
    item_id = items.id if items is Item else items.c.id
    return _tag_names(item_id).correlate(items).scalar_subquery().label("tags")


async def tag_names_of(session: AsyncSession, item_id: int) -> list[str]:
    """The sorted tag names of one item."""
    return (await session.scalar(_tag_names(item_id))) or []


def item_select() -> Select[Any]:
    """SELECT of every item field plus its tag names; add WHERE / ORDER BY / LIMIT."""
    return select(*ITEM_COLUMNS, tag_names_column())


def to_item_out(row: Mapping[Any, Any], tags: list[str] | None = None) -> ItemOut:
    """Shape a result row (optionally with known tags) as the API's Item."""
    return ItemOut(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        price=float(row["price"]),
        is_active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        owner_id=row["owner_id"],
        # Code point order (Python's own): the same on every database.
        tags=sorted(row["tags"] or ()) if tags is None else tags,
    )


_ITEM_BY_ID = ReadQuery(item_select().where(Item.id == bindparam("id")))


async def get_item(database: Database, item_id: int) -> ItemOut:
    """One item by id, or NotFoundError."""
    row = await database.fetch_one(_ITEM_BY_ID, id=item_id) if is_valid_id(item_id) else None
    if row is None:
        raise NotFoundError(ITEM_NOT_FOUND)
    return to_item_out(row)


async def create_item(session: AsyncSession, owner: User, data: ItemCreate) -> ItemOut:
    """Insert an item owned by `owner`, with its tags (unknown names are created)."""
    values = data.model_dump(exclude={"tags"})
    row = (
        await session.execute(
            insert(Item).values(**values, owner_id=owner.id).returning(*ITEM_COLUMNS)
        )
    ).one()
    tags = data.tags or []
    if tags:
        await replace_item_tags(session, row.id, tags, had_tags=False)
    return to_item_out(row._mapping, tags)


def _owned_by(user: User) -> ColumnElement[bool] | None:
    return None if user.is_superuser else Item.owner_id == user.id


async def _explain_miss(
    session: AsyncSession, item_id: int
) -> NotFoundError | PermissionDeniedError:
    """Why a guarded write touched no row: the item is missing, or someone else's."""
    exists = await session.scalar(select(Item.id).where(Item.id == item_id))
    if exists is None:
        return NotFoundError(ITEM_NOT_FOUND)
    return PermissionDeniedError("Not enough permissions")


async def update_item(
    session: AsyncSession, user: User, item_id: int, changes: dict[str, Any]
) -> ItemOut:
    """Apply `changes` (only the fields given) if `user` owns the item or is a superuser.

    `tags`, when given, replaces the tag set. `updated_at` is set on every update.
    """
    if not is_valid_id(item_id):
        raise NotFoundError(ITEM_NOT_FOUND)
    new_tags: list[str] | None = changes.pop("tags", None)
    statement = update(Item).where(Item.id == item_id).values(**changes, updated_at=utcnow())
    if (guard := _owned_by(user)) is not None:
        statement = statement.where(guard)
    row = (await session.execute(statement.returning(*ITEM_COLUMNS))).one_or_none()
    if row is None:
        raise await _explain_miss(session, item_id)
    if new_tags is not None:
        await replace_item_tags(session, item_id, new_tags)
        return to_item_out(row._mapping, new_tags)
    # Not folded into RETURNING: SQLite renders RETURNING columns unqualified, which
    # would silently mis-correlate the subquery.
    return to_item_out(row._mapping, await tag_names_of(session, item_id))


async def delete_item(session: AsyncSession, user: User, item_id: int) -> None:
    """Delete the item if `user` owns it or is a superuser."""
    if not is_valid_id(item_id):
        raise NotFoundError(ITEM_NOT_FOUND)
    statement = delete(Item).where(Item.id == item_id)
    if (guard := _owned_by(user)) is not None:
        statement = statement.where(guard)
    result = await session.execute(statement.returning(Item.id))
    if result.scalar_one_or_none() is None:
        raise await _explain_miss(session, item_id)
