"""Items: create, read, list, update and delete, with their tag sets.

Reads are single statements: each item row carries its tag names through a correlated
aggregate subquery, so a page costs one statement whatever its size and a LIMIT counts
items, not joined item x tag rows. They are precompiled `CompiledQuery`s run outside any
transaction. Writes that are one statement on PostgreSQL run as one (`item_statements`);
the others run in the request's unit of work.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.compiled import CompiledQuery
from catalog.db.session import Database
from catalog.db.types import utcnow
from catalog.errors import NotFoundError, PermissionDeniedError
from catalog.models import Item
from catalog.schemas import ItemCreate
from catalog.services import item_statements
from catalog.services.common import Actor, is_valid_id
from catalog.services.item_rows import (
    ITEM_COLUMNS,
    ItemOut,
    item_select,
    tag_names_of,
    to_item_out,
)
from catalog.services.tags import replace_item_tags

ITEM_NOT_FOUND = "Item not found"


_ITEM_BY_ID = CompiledQuery(item_select().where(Item.id == bindparam("id")))


async def get_item(database: Database, item_id: int) -> ItemOut:
    """One item by id, or NotFoundError."""
    row = await database.fetch_one(_ITEM_BY_ID, id=item_id) if is_valid_id(item_id) else None
    if row is None:
        raise NotFoundError(ITEM_NOT_FOUND)
    return to_item_out(row)


async def create_item(
    database: Database, session: AsyncSession, owner: Actor, data: ItemCreate
) -> ItemOut:
    """Insert an item owned by `owner`, with its tags (unknown names are created).

    PostgreSQL: one statement (`item_statements`). Elsewhere: several, in `session`'s
    unit of work.
    """
    tags = data.tags or []
    values = data.model_dump(exclude={"tags"})
    if database.backend == "postgresql":
        query = item_statements.CREATE_ITEM_WITH_TAGS if tags else item_statements.CREATE_ITEM
        extra = {"tags": tags} if tags else {}
        created = await database.fetch_one(query, **values, owner_id=owner.id, **extra)
        assert created is not None  # an INSERT ... RETURNING returns its row
        return to_item_out(created, tags)
    row = (
        await session.execute(
            insert(Item).values(**values, owner_id=owner.id).returning(*ITEM_COLUMNS)
        )
    ).one()
    if tags:
        await replace_item_tags(session, row.id, tags, had_tags=False)
    return to_item_out(row._mapping, tags)


def _owned_by(actor: Actor) -> ColumnElement[bool] | None:
    return None if actor.is_superuser else Item.owner_id == actor.id


async def _explain_miss(
    session: AsyncSession, item_id: int
) -> NotFoundError | PermissionDeniedError:
    """Why a guarded write touched no row: the item is missing, or someone else's."""
    exists = await session.scalar(select(Item.id).where(Item.id == item_id))
    if exists is None:
        return NotFoundError(ITEM_NOT_FOUND)
    return PermissionDeniedError("Not enough permissions")


async def update_item(
    database: Database,
    session: AsyncSession,
    actor: Actor,
    item_id: int,
    changes: dict[str, Any],
) -> ItemOut:
    """Apply `changes` (only the fields given) if `actor` owns the item or is a superuser.

    `tags`, when given, replaces the tag set. `updated_at` is set on every update.
    Without tags on PostgreSQL this is one statement; otherwise several, in `session`'s
    unit of work.
    """
    if not is_valid_id(item_id):
        raise NotFoundError(ITEM_NOT_FOUND)
    new_tags: list[str] | None = changes.pop("tags", None)
    if new_tags is None and database.backend == "postgresql":
        query = item_statements.update_item_statement(frozenset(changes))
        updated = await database.fetch_one(
            query,
            **changes,
            item_id=item_id,
            actor_id=actor.id,
            actor_is_superuser=actor.is_superuser,
        )
        if updated is None:
            raise await _explain_miss(session, item_id)
        return to_item_out(updated)
    statement = update(Item).where(Item.id == item_id).values(**changes, updated_at=utcnow())
    if (guard := _owned_by(actor)) is not None:
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


async def delete_item(session: AsyncSession, actor: Actor, item_id: int) -> None:
    """Delete the item if `actor` owns it or is a superuser."""
    if not is_valid_id(item_id):
        raise NotFoundError(ITEM_NOT_FOUND)
    statement = delete(Item).where(Item.id == item_id)
    if (guard := _owned_by(actor)) is not None:
        statement = statement.where(guard)
    result = await session.execute(statement.returning(Item.id))
    if result.scalar_one_or_none() is None:
        raise await _explain_miss(session, item_id)
