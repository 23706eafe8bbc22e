"""Tags: listing with usage counts, creation, deletion, and name -> id resolution.

(Tags named on an item are created by the item writes, `item_writes`.)
"""

from __future__ import annotations

from sqlalchemy import Integer, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from catalog.db.compiled import CompiledQuery
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import ConflictError, NotFoundError
from catalog.models import Tag, is_valid_id, item_tags
from catalog.schemas import TagRead
from catalog.services.item_writes import BUMP_ITEMS_WITH_TAG, item_writes_for

TAG_NOT_FOUND = "Tag not found"
TAG_EXISTS = "Tag already exists"

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
_BY_ID = Tag.id == bindparam("tag_id", type_=Integer)
_RENAME = CompiledQuery(update(Tag).where(_BY_ID).values(name=bindparam("name")).returning(Tag.id))
_ITEM_COUNT = CompiledQuery(
    select(func.count().label("item_count")).where(item_tags.c.tag_id == bindparam("tag_id"))
)


async def list_tags(uow: UnitOfWork, *, skip: int, limit: int) -> list[TagRead]:
    """A page of tags ordered by name (code point order), each with its item count."""
    rows = await uow.fetch_all(_PAGE, skip=skip, limit=limit)
    # Dict displays, not `TagRead(...)` calls (see `to_item_read`).
    return [{"id": r["id"], "name": r["name"], "item_count": r["item_count"]} for r in rows]


async def create_tag(uow: UnitOfWork, name: str) -> TagRead:
    """Create a tag with a normalized name; ConflictError if it exists."""
    try:
        row = await uow.write(_CREATE, name=name)
    except IntegrityError:
        raise ConflictError(TAG_EXISTS) from None
    assert row is not None
    return {"id": row["id"], "name": name, "item_count": 0}


async def rename_tag(uow: UnitOfWork, tag_id: int, name: str) -> TagRead:
    """Give a tag a new normalized name (the items carrying it keep it); NotFoundError, or
    ConflictError when another tag has that name (the database decides)."""
    if not is_valid_id(tag_id):
        raise NotFoundError(TAG_NOT_FOUND)
    await uow.session()  # the new name and the items' new versions: one transaction
    try:
        row = await uow.write(_RENAME, tag_id=tag_id, name=name)
    except IntegrityError:
        raise ConflictError(TAG_EXISTS) from None
    if row is None:
        raise NotFoundError(TAG_NOT_FOUND)
    await uow.write(BUMP_ITEMS_WITH_TAG, tag_id=tag_id)  # their representation changed
    counted = await uow.fetch_one(_ITEM_COUNT, tag_id=tag_id)
    assert counted is not None  # an aggregate always returns its row
    return {"id": tag_id, "name": name, "item_count": counted["item_count"]}


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
