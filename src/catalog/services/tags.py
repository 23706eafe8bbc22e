"""Tags: listing with usage counts, creation, deletion, and name -> id resolution."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.compiled import CompiledQuery
from catalog.db.session import Database
from catalog.errors import ConflictError, NotFoundError
from catalog.models import Tag, item_tags
from catalog.services.common import dialect_name, insert_ignoring_duplicates

TAG_NOT_FOUND = "Tag not found"


class TagOut(TypedDict):
    id: int
    name: str
    item_count: int


_item_count = (
    select(func.count()).where(item_tags.c.tag_id == Tag.id).scalar_subquery().label("item_count")
)


async def list_tags(session: AsyncSession, *, skip: int, limit: int) -> list[TagOut]:
    """A page of tags ordered by name (code point order), each with its item count."""
    rows = await session.execute(
        select(Tag.id, Tag.name, _item_count).order_by(Tag.name).offset(skip).limit(limit)
    )
    return [TagOut(id=r.id, name=r.name, item_count=r.item_count) for r in rows]


async def create_tag(session: AsyncSession, name: str) -> TagOut:
    """Create a tag with a normalized name; ConflictError if it exists."""
    try:
        tag_id = await session.scalar(insert(Tag).values(name=name).returning(Tag.id))
    except IntegrityError:
        raise ConflictError("Tag already exists") from None
    assert tag_id is not None
    return TagOut(id=tag_id, name=name, item_count=0)


_TAG_BY_NAME = CompiledQuery(select(Tag.id).where(Tag.name == bindparam("name")))


async def get_tag_id(database: Database, name: str) -> int:
    """The id of the tag with this normalized name, or NotFoundError."""
    row = await database.fetch_one(_TAG_BY_NAME, name=name)
    if row is None:
        raise NotFoundError(TAG_NOT_FOUND)
    return int(row["id"])


async def delete_tag(session: AsyncSession, name: str) -> None:
    """Delete a tag; the database removes it from every item (ON DELETE CASCADE)."""
    result = await session.execute(delete(Tag).where(Tag.name == name).returning(Tag.id))
    if result.scalar_one_or_none() is None:
        raise NotFoundError(TAG_NOT_FOUND)


async def resolve_tag_ids(session: AsyncSession, names: Iterable[str]) -> list[int]:
    """Ids for these normalized names, creating the missing tags.

    Two statements whatever the number of names; concurrent creators of the same tag
    both succeed (ON CONFLICT DO NOTHING, then read back what now exists).
    """
    wanted = sorted(set(names))
    if not wanted:
        return []
    await session.execute(
        insert_ignoring_duplicates(dialect_name(session), Tag, [{"name": n} for n in wanted])
    )
    ids = list(await session.scalars(select(Tag.id).where(Tag.name.in_(wanted))))
    if len(ids) != len(wanted):  # a concurrent DELETE /tags won the race
        raise ConflictError("A tag was deleted while the item was being saved; try again")
    return ids


async def replace_item_tags(
    session: AsyncSession, item_id: int, names: list[str], *, had_tags: bool = True
) -> None:
    """Make `names` the item's exact tag set."""
    if had_tags:
        await session.execute(delete(item_tags).where(item_tags.c.item_id == item_id))
    tag_ids = await resolve_tag_ids(session, names)
    if tag_ids:
        try:
            await session.execute(
                insert(item_tags), [{"item_id": item_id, "tag_id": t} for t in tag_ids]
            )
        except IntegrityError:
            raise ConflictError("A tag was deleted while the item was being saved") from None
