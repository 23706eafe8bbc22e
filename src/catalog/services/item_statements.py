"""Item writes as single PostgreSQL statements.

A write that is one statement is atomic on its own: it needs no BEGIN/COMMIT round
trips and holds its locks only while it runs. On PostgreSQL, data-modifying CTEs let
an item create (item, missing tags, tag links) and an update without tags be one
statement each, the number of round trips a hand-written service would make.
SQLite cannot put an INSERT in a CTE; there the same writes run as several statements
in the request's unit of work (services.items).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean, Insert, String, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql

from catalog.db.compiled import CompiledQuery
from catalog.db.types import utcnow
from catalog.models import Item, Tag, item_tags
from catalog.services.item_rows import ITEM_COLUMNS, tag_names_column

ITEM_FIELDS = ("name", "description", "price", "is_active")


def _new_item() -> Insert:
    values: dict[str, Any] = {name: bindparam(name) for name in ITEM_FIELDS}
    return insert(Item).values(**values, owner_id=bindparam("owner_id"))


CREATE_ITEM = CompiledQuery(select(_new_item().returning(*ITEM_COLUMNS).cte("new_item")))


def _create_item_with_tags() -> CompiledQuery:
    item = _new_item().returning(*ITEM_COLUMNS).cte("new_item")
    names = select(func.unnest(bindparam("tags", type_=postgresql.ARRAY(String))))
    upsert = postgresql.insert(Tag).from_select(["name"], names)
    # DO UPDATE (a no-op) instead of DO NOTHING: it returns the ids of existing tags too,
    # including ones another transaction committed while this statement waited for them.
    tags = (
        upsert.on_conflict_do_update(index_elements=[Tag.name], set_={"name": upsert.excluded.name})
        .returning(Tag.id)
        .cte("tag_ids")
    )
    links = (
        insert(item_tags)
        .from_select(["item_id", "tag_id"], select(item.c.id, tags.c.id))
        .returning(item_tags.c.tag_id)
        .cte("links")
    )
    linked = select(func.count()).select_from(links).scalar_subquery().label("linked")
    return CompiledQuery(select(item, linked))


CREATE_ITEM_WITH_TAGS = _create_item_with_tags()


@lru_cache(maxsize=32)
def update_item_statement(fields: frozenset[str]) -> CompiledQuery:
    """UPDATE of the given fields (plus updated_at) if the actor may, returning the item.

    Matches no row when the item is missing or the actor is neither owner nor superuser.
    """
    allowed = or_(
        Item.owner_id == bindparam("actor_id"),
        bindparam("actor_is_superuser", type_=Boolean),
    )
    statement = (
        update(Item)
        .where(Item.id == bindparam("item_id"), allowed)
        .values(**{name: bindparam(name) for name in sorted(fields)}, updated_at=utcnow())
        .returning(*ITEM_COLUMNS, tag_names_column())
    )
    return CompiledQuery(statement)
