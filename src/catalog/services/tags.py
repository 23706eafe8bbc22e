"""Tags: listing with usage counts, creation, deletion, and name -> id resolution.

(Tags named on an item are created by the item writes, `item_writes`.)
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from catalog.db.compiled import CompiledQuery
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import ConflictError, NotFoundError
from catalog.models import Tag, item_tags
from catalog.schemas import TagRead
from catalog.services.item_writes import item_writes_for

TAG_NOT_FOUND = "Tag not found"

_item_count = (
    select(func.count()).where(item_tags.c.tag_id == Tag.id).scalar_subquery().label("item_count")
)
_PAGE = CompiledQuery(
    select(Tag.id, Tag.name, _item_count)
    .order_by(Tag.name)
    .offset(bindparam("skip"))
    .limit(bindparam("limit"))
)
_CREATE = CompiledQuery(insert(Tag).values(name=bindparam("name")).returning(Tag.id))
_ID_BY_NAME = CompiledQuery(select(Tag.id).where(Tag.name == bindparam("name")))


async def list_tags(uow: UnitOfWork, *, skip: int, limit: int) -> list[TagRead]:
    """A page of tags ordered by name (code point order), each with its item count."""
    rows = await uow.fetch_all(_PAGE, skip=skip, limit=limit)
    return [TagRead(id=r["id"], name=r["name"], item_count=r["item_count"]) for r in rows]


async def create_tag(uow: UnitOfWork, name: str) -> TagRead:
    """Create a tag with a normalized name; ConflictError if it exists."""
    try:
        row = await uow.write(_CREATE, name=name)
    except IntegrityError:
        raise ConflictError("Tag already exists") from None
    assert row is not None
    return TagRead(id=row["id"], name=name, item_count=0)


async def get_tag_id(uow: UnitOfWork, name: str) -> int:
    """The id of the tag with this normalized name, or NotFoundError."""
    row = await uow.fetch_one(_ID_BY_NAME, name=name)
    if row is None:
        raise NotFoundError(TAG_NOT_FOUND)
    return int(row["id"])


async def delete_tag(uow: UnitOfWork, name: str) -> None:
    """Delete a tag and take it off every item (their versions, hence ETags, move)."""
    if not await uow.strategy(item_writes_for).remove_tag(uow, name):
        raise NotFoundError(TAG_NOT_FOUND)
