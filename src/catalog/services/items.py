"""Items: read one, create, update and delete, with their tag sets.

A read is one precompiled statement: the row carries its tag names through a correlated
aggregate, so it costs one round trip and no transaction. How a write runs depends on the
backend (`item_writes`); what it means does not: this module is the same for every backend.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam

from catalog.db.compiled import CompiledQuery
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import NotFoundError, PermissionDeniedError
from catalog.models import Item, is_valid_id
from catalog.schemas import ItemCreate, ItemRead
from catalog.services.item_rows import item_select, to_item_read
from catalog.services.item_writes import ITEM_EXISTS, Guarded, item_writes_for
from catalog.services.users import Principal

ITEM_NOT_FOUND = "Item not found"

_ITEM_BY_ID = CompiledQuery(item_select().where(Item.id == bindparam("id", type_=Integer)))


async def get_item(uow: UnitOfWork, item_id: int) -> ItemRead:
    """One item by id, or NotFoundError."""
    row = await uow.fetch_one(_ITEM_BY_ID, id=item_id) if is_valid_id(item_id) else None
    if row is None:
        raise NotFoundError(ITEM_NOT_FOUND)
    return to_item_read(row)


async def create_item(uow: UnitOfWork, owner: Principal, data: ItemCreate) -> ItemRead:
    """Insert an item owned by `owner`, with its tags (unknown names are created)."""
    writes = uow.strategy(item_writes_for)
    return await writes.create(uow, owner.id, data.model_dump(exclude={"tags"}), data.tags or [])


async def _explain_miss(uow: UnitOfWork, item_id: int) -> NotFoundError | PermissionDeniedError:
    """Why a guarded write touched no row: the item is missing, or someone else's."""
    if await uow.fetch_one(ITEM_EXISTS, item_id=item_id) is None:
        return NotFoundError(ITEM_NOT_FOUND)
    return PermissionDeniedError()


async def update_item(
    uow: UnitOfWork, actor: Principal, item_id: int, changes: dict[str, Any]
) -> ItemRead:
    """Apply `changes` (only the fields given) if `actor` owns the item or is a superuser.

    `tags`, when given, replaces the tag set. `updated_at` is set on every update.
    """
    if not is_valid_id(item_id):
        raise NotFoundError(ITEM_NOT_FOUND)
    values = dict(changes)
    tags: list[str] | None = values.pop("tags", None)
    writes = uow.strategy(item_writes_for)
    item = await writes.update(uow, Guarded(actor, item_id), values, tags)
    if item is None:
        raise await _explain_miss(uow, item_id)
    return item


async def delete_item(uow: UnitOfWork, actor: Principal, item_id: int) -> None:
    """Delete the item if `actor` owns it or is a superuser."""
    if not is_valid_id(item_id):
        raise NotFoundError(ITEM_NOT_FOUND)
    if not await uow.strategy(item_writes_for).delete(uow, Guarded(actor, item_id)):
        raise await _explain_miss(uow, item_id)
