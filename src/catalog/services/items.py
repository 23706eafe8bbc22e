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
from catalog.errors import (
    CatalogError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
)
from catalog.models import Item, is_valid_id
from catalog.schemas import ItemCreate, ItemRead
from catalog.services.item_rows import item_select, to_item_read
from catalog.services.item_writes import ITEM_STATE, Guarded, item_writes_for
from catalog.services.users import Principal
from catalog.services.versions import Expected, Versioned

ITEM_NOT_FOUND = "Item not found"

_ITEM_BY_ID = CompiledQuery(item_select().where(Item.id == bindparam("id", type_=Integer)))


async def get_item(uow: UnitOfWork, item_id: int) -> Versioned[ItemRead]:
    """One item by id, with its version; NotFoundError if there is none."""
    row = await uow.fetch_one(_ITEM_BY_ID, id=item_id) if is_valid_id(item_id) else None
    if row is None:
        raise NotFoundError(ITEM_NOT_FOUND)
    return Versioned(to_item_read(row), row["version"])


async def create_item(uow: UnitOfWork, owner: Principal, data: ItemCreate) -> Versioned[ItemRead]:
    """Insert an item owned by `owner`, with its tags (unknown names are created)."""
    writes = uow.strategy(item_writes_for)
    return await writes.create(uow, owner.id, data.model_dump(exclude={"tags"}), data.tags or [])


async def _explain_miss(uow: UnitOfWork, target: Guarded) -> CatalogError:
    """Why a guarded write touched no row: the item is missing, someone else's, or not at
    the version the write was conditional on."""
    row = await uow.fetch_one(ITEM_STATE, item_id=target.item_id)
    if row is None:
        return NotFoundError(ITEM_NOT_FOUND)
    actor = target.actor
    if not actor.is_superuser and row["owner_id"] != actor.id:
        return PermissionDeniedError()  # whatever the version: reveal nothing more
    return PreconditionFailedError()


async def update_item(
    uow: UnitOfWork,
    actor: Principal,
    item_id: int,
    changes: dict[str, Any],
    *,
    expected: Expected = None,
) -> Versioned[ItemRead]:
    """Apply `changes` (only the fields given) if `actor` owns the item or is a superuser
    and, when `expected` is given, the item is still at one of those versions.

    `tags`, when given, replaces the tag set. `updated_at` and the version move on every
    update.
    """
    if not is_valid_id(item_id):
        raise NotFoundError(ITEM_NOT_FOUND)
    values = dict(changes)
    tags: list[str] | None = values.pop("tags", None)
    target = Guarded(actor, item_id, expected)
    if expected == ():  # no listed version can match: only why remains to be said
        raise await _explain_miss(uow, target)
    item = await uow.strategy(item_writes_for).update(uow, target, values, tags)
    if item is None:
        raise await _explain_miss(uow, target)
    return item


async def delete_item(
    uow: UnitOfWork, actor: Principal, item_id: int, *, expected: Expected = None
) -> None:
    """Delete the item if `actor` owns it or is a superuser (and it is at an expected
    version, when `expected` is given)."""
    if not is_valid_id(item_id):
        raise NotFoundError(ITEM_NOT_FOUND)
    target = Guarded(actor, item_id, expected)
    if expected == () or not await uow.strategy(item_writes_for).delete(uow, target):
        raise await _explain_miss(uow, target)
