"""The item lists: filters, sorting, offset and keyset pages, optional total count.

One statement for the page (plus one for the total when asked), whatever the page size
or number of tags: tag names come from a correlated aggregate, and tag filters are
EXISTS semi-joins, so LIMIT counts items and pages are never short.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import ColumnElement, exists, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.errors import NotFoundError
from catalog.models import Item, Tag, item_tags
from catalog.pagination import (
    SortField,
    SortKey,
    decode_datetime,
    decode_decimal,
    encode_value,
    keyset_after,
    order_by,
    row_key,
)
from catalog.services.common import is_valid_id
from catalog.services.items import ItemOut, item_select, to_item_out
from catalog.services.tags import get_tag_id
from catalog.services.users import USER_NOT_FOUND, user_exists

ITEM_SORT_FIELDS: dict[str, SortField] = {
    "id": SortField(Item.id),
    "name": SortField(Item.name),
    "price": SortField(Item.price, decode=decode_decimal, encode=encode_value),
    "created_at": SortField(Item.created_at, decode=decode_datetime, encode=encode_value),
    "updated_at": SortField(
        Item.updated_at, nullable=True, decode=decode_datetime, encode=encode_value
    ),
}


@dataclass(frozen=True)
class ItemFilters:
    """What a client may filter item lists by; every bound is inclusive."""

    q: str | None = None
    tags: tuple[str, ...] = ()
    owner_id: int | None = None
    is_active: bool | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def canonical(self) -> str:
        """A stable text form, so a cursor can be bound to exactly this filter set."""
        data = {k: encode_value(v) for k, v in self.__dict__.items() if v not in (None, ())}
        data["tags"] = sorted(self.tags)
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE conditions these filters stand for."""
        where: list[ColumnElement[bool]] = []
        if self.q:
            where.append(Item.name.ilike(f"%{_escape_like(self.q)}%", escape="\\"))
        for name in sorted(set(self.tags)):
            where.append(_has_tag(name))
        if self.owner_id is not None:
            # An id no row can have matches nothing (and never reaches PostgreSQL's int4).
            valid = is_valid_id(self.owner_id)
            where.append(Item.owner_id == self.owner_id if valid else false())
        if self.is_active is not None:
            where.append(Item.is_active.is_(self.is_active))
        if self.min_price is not None:
            where.append(Item.price >= self.min_price)
        if self.max_price is not None:
            where.append(Item.price <= self.max_price)
        if self.created_after is not None:
            where.append(Item.created_at >= self.created_after)
        if self.created_before is not None:
            where.append(Item.created_at <= self.created_before)
        return where


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has_tag(name: str) -> ColumnElement[bool]:
    return exists().where(
        item_tags.c.item_id == Item.id,
        item_tags.c.tag_id == Tag.id,
        Tag.name == name,
    )


@dataclass(frozen=True)
class ItemListQuery:
    """A request for one page: filters, sort, and either an offset or a keyset position."""

    filters: ItemFilters
    sort: SortKey
    limit: int
    skip: int = 0
    after: list[Any] | None = None  # sort key of the last row already served
    with_total: bool = False
    # Scope-only conditions (the owner of /users/{id}/items, the tag of /tags/{n}/items).
    scope: tuple[ColumnElement[bool], ...] = field(default=())


@dataclass(frozen=True)
class ItemPage:
    """One page of items, the key to continue after it (None on the last page), the total."""

    items: list[ItemOut]
    next_key: list[Any] | None
    total: int | None


async def list_items(session: AsyncSession, query: ItemListQuery) -> ItemPage:
    """Fetch one page; one extra row tells whether a next page exists."""
    where = [*query.scope, *query.filters.conditions()]
    statement = item_select().where(*where).order_by(*order_by(query.sort, ITEM_SORT_FIELDS))
    if query.after is not None:
        statement = statement.where(keyset_after(query.sort, ITEM_SORT_FIELDS, query.after))
    else:
        statement = statement.offset(query.skip)
    rows = (await session.execute(statement.limit(query.limit + 1))).all()
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_key = row_key(query.sort, rows[-1]._mapping) if has_more else None
    total = None
    if query.with_total:
        count = select(func.count()).select_from(Item).where(*where)
        total = (await session.execute(count)).scalar_one()
    return ItemPage([to_item_out(row) for row in rows], next_key, total)


async def list_user_items(session: AsyncSession, user_id: int, query: ItemListQuery) -> ItemPage:
    """A page of one user's items; NotFoundError if there is no such user."""
    if not await user_exists(session, user_id):
        raise NotFoundError(USER_NOT_FOUND)
    return await list_items(session, replace(query, scope=(Item.owner_id == user_id,)))


async def list_tag_items(session: AsyncSession, tag_name: str, query: ItemListQuery) -> ItemPage:
    """A page of the items carrying a tag; NotFoundError if there is no such tag."""
    tag_id = await get_tag_id(session, tag_name)
    scope = exists().where(item_tags.c.item_id == Item.id, item_tags.c.tag_id == tag_id)
    return await list_items(session, replace(query, scope=(scope,)))
