"""How items are written: the rules, defined once, and the two ways backends run them.

The rules every write obeys are statements built here once:
- ownership: a guarded write's own WHERE admits the owner or a superuser (`_may_write`), so
  permission and write are one atomic step, never fetch-then-check;
- tags: named tags are upserted (`_upsert_tags`), and an item's set is replaced whole;
- `updated_at` is set by every update, in the database's clock.

`OneStatementItemWrites` (backends with writable CTEs: PostgreSQL) runs each write as one
statement, atomic on its own, without BEGIN/COMMIT round trips. `StepwiseItemWrites`
(SQLite) runs the same statements one after another in the unit of work's transaction.
A `Database` picks one for its backend, once (`item_writes_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Insert,
    Integer,
    Select,
    Update,
    bindparam,
    delete,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.dml import ReturningDelete
from sqlalchemy.sql.selectable import CTE

from catalog.db.backends import Backend
from catalog.db.compiled import CompiledQuery, Row
from catalog.db.types import STRING_LIST, each_string, upsert, utcnow
from catalog.db.unit_of_work import UnitOfWork
from catalog.models import Item, Tag, item_tags
from catalog.schemas import ItemRead
from catalog.services.item_rows import (
    ITEM_COLUMNS,
    TAG_NAMES_OF_ITEM,
    tag_names_column,
    to_item_read,
)
from catalog.services.users import Principal
from catalog.services.versions import (
    MAX_EXPECTED_VERSIONS,
    Expected,
    Versioned,
    expected_params,
    version_matches,
)

ITEM_FIELDS = ("name", "description", "price", "is_active")

# --- the rules ----------------------------------------------------------------------------


def _may_write() -> ColumnElement[bool]:
    """The ownership rule: the actor owns the item or is a superuser."""
    return or_(
        Item.owner_id == bindparam("actor_id", type_=Integer),
        bindparam("actor_is_superuser", type_=Boolean),
    )


def _named_tags() -> Select[Any]:
    """The names in the `tags` parameter (a list), as rows."""
    names = each_string(bindparam("tags", type_=STRING_LIST)).table_valued("value", name="value")
    return select(names.c.value)


def _upsert_tags(names: Select[Any]) -> Insert:
    """Create the tags among `names` that do not exist; RETURNING every named tag's id.

    DO UPDATE (a no-op) rather than DO NOTHING: it returns the ids of existing tags too, and
    locks them, so a concurrent DELETE /tags waits for this write instead of racing it.
    The WHERE keeps SQLite from reading ON CONFLICT as a join constraint.
    """
    statement = upsert(Tag).from_select(["name"], names.where(true()))
    return statement.on_conflict_do_update(
        index_elements=[Tag.name], set_={"name": statement.excluded.name}
    ).returning(Tag.id)


def _new_item() -> Insert:
    values: dict[str, Any] = {name: bindparam(name) for name in ITEM_FIELDS}
    return insert(Item).values(**values, owner_id=bindparam("owner_id")).returning(*ITEM_COLUMNS)


def _guarded(checks: int) -> list[ColumnElement[bool]]:
    """Item `item_id`, if the actor may write it and it is at an expected version."""
    return [
        Item.id == bindparam("item_id", type_=Integer),
        _may_write(),
        *version_matches(Item.version, checks),
    ]


def _guarded_update(fields: frozenset[str], checks: int) -> Update:
    """UPDATE of `fields` of a guarded item; updated_at and version move with every update."""
    return (
        update(Item)
        .where(*_guarded(checks))
        .values(
            **{name: bindparam(name) for name in sorted(fields)},
            updated_at=utcnow(),
            version=Item.version + 1,
        )
    )


@lru_cache(maxsize=MAX_EXPECTED_VERSIONS + 1)
def _delete(checks: int) -> CompiledQuery:
    return CompiledQuery(delete(Item).where(*_guarded(checks)).returning(Item.id))


def _bump_tagged() -> Update:
    """Move the version of every item carrying tag `tag_name` (its representation changes)."""
    tagged = (
        select(item_tags.c.item_id)
        .join(Tag, Tag.id == item_tags.c.tag_id)
        .where(Tag.name == bindparam("tag_name"))
    )
    return update(Item).where(Item.id.in_(tagged)).values(version=Item.version + 1)


BUMP_ITEMS_WITH_TAG = CompiledQuery(
    update(Item)
    .where(
        Item.id.in_(
            select(item_tags.c.item_id).where(
                item_tags.c.tag_id == bindparam("tag_id", type_=Integer)
            )
        )
    )
    .values(version=Item.version + 1)
)
"""Move the version of every item carrying tag `tag_id` (e.g. renamed: they show it)."""


def _delete_tag() -> ReturningDelete[tuple[int]]:
    """Delete tag `tag_name`; the database takes it off every item (ON DELETE CASCADE)."""
    return delete(Tag).where(Tag.name == bindparam("tag_name")).returning(Tag.id)


ITEM_STATE = CompiledQuery(
    select(Item.owner_id, Item.version).where(Item.id == bindparam("item_id", type_=Integer))
)

# --- the strategies -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Guarded:
    """The item a guarded write targets, who writes, and the versions it must be at."""

    actor: Principal
    item_id: int
    expected: Expected = None

    @property
    def checks(self) -> int:
        return len(self.expected or ())

    def params(self) -> dict[str, Any]:
        actor = self.actor
        return {
            "item_id": self.item_id,
            "actor_id": actor.id,
            "actor_is_superuser": actor.is_superuser,
            **expected_params(self.expected),
        }


Values = Mapping[str, Any]  # validated item fields (ITEM_FIELDS)


class ItemWrites:
    """Create, update and delete items with their tags, as one backend runs them."""

    async def create(
        self, uow: UnitOfWork, owner_id: int, values: Values, tags: list[str]
    ) -> Versioned[ItemRead]:
        """Insert an item owned by `owner_id` with the given (normalized, unique) tags."""
        raise NotImplementedError

    async def update(
        self, uow: UnitOfWork, target: Guarded, values: Values, tags: list[str] | None
    ) -> Versioned[ItemRead] | None:
        """Change `values`, and replace the tag set if `tags` is given; None if no row matched
        (no such item, the actor may not write it, or it is not at an expected version)."""
        raise NotImplementedError

    async def delete(self, uow: UnitOfWork, target: Guarded) -> bool:
        """Delete the item; False if no row matched."""
        return await uow.write(_delete(target.checks), **target.params()) is not None

    async def remove_tag(self, uow: UnitOfWork, name: str) -> bool:
        """Delete a tag, taking it off every item (whose versions move); False if none."""
        raise NotImplementedError


_CREATE = CompiledQuery(_new_item())


def _pairs(item: CTE, tag_ids: CTE) -> Select[Any]:
    """(item id, tag id) for the item's row and every tag: a deliberate cross join."""
    return select(item.c.id, tag_ids.c.id).select_from(item.join(tag_ids, true()))


def _create_with_tags() -> CompiledQuery:
    item = _new_item().cte("new_item")
    tag_ids = _upsert_tags(_named_tags()).cte("tag_ids")
    links = insert(item_tags).from_select(["item_id", "tag_id"], _pairs(item, tag_ids))
    # Data-modifying CTEs run to completion whether or not the outer query reads them.
    return CompiledQuery(select(item).add_cte(links.cte("links")))


_CREATE_WITH_TAGS = _create_with_tags()


# Statement shapes: subsets of the 4 fields x with or without tags x expected versions.
_SHAPES = 16 * 2 * (MAX_EXPECTED_VERSIONS + 1)


@lru_cache(maxsize=_SHAPES)
def _update_one_statement(fields: frozenset[str], with_tags: bool, checks: int) -> CompiledQuery:
    """The update as one statement; with tags, the old links go and the new ones come."""
    update = _guarded_update(fields, checks)
    if not with_tags:
        return CompiledQuery(update.returning(*ITEM_COLUMNS, tag_names_column(joined=True)))
    item = update.returning(*ITEM_COLUMNS).cte("updated")
    # Tags are created only when the update matched (no side effects on a 403 or 404).
    tag_ids = _upsert_tags(_named_tags().where(select(item.c.id).exists())).cte("tag_ids")
    # Links both kept and new are left alone or added: all of a statement's CTEs see the
    # same snapshot, so one statement cannot delete a row and re-insert its key.
    unlink = (
        delete(item_tags)
        .where(
            item_tags.c.item_id.in_(select(item.c.id)),
            item_tags.c.tag_id.not_in(select(tag_ids.c.id)),
        )
        .cte("unlinked")
    )
    link = upsert(item_tags).from_select(["item_id", "tag_id"], _pairs(item, tag_ids))
    links = link.on_conflict_do_nothing().cte("linked")
    return CompiledQuery(select(item).add_cte(unlink, links))


_REMOVE_TAG = CompiledQuery(_delete_tag().add_cte(_bump_tagged().cte("bumped")))


class OneStatementItemWrites(ItemWrites):
    """Every write is one statement (data-modifying CTEs): atomic, one round trip."""

    async def remove_tag(self, uow: UnitOfWork, name: str) -> bool:
        return await uow.write(_REMOVE_TAG, tag_name=name) is not None

    async def create(
        self, uow: UnitOfWork, owner_id: int, values: Values, tags: list[str]
    ) -> Versioned[ItemRead]:
        query = _CREATE_WITH_TAGS if tags else _CREATE
        extra = {"tags": tags} if tags else {}
        row = await uow.write(query, **values, owner_id=owner_id, **extra)
        assert row is not None  # an INSERT ... RETURNING returns its row
        return _versioned(row, tags)

    async def update(
        self, uow: UnitOfWork, target: Guarded, values: Values, tags: list[str] | None
    ) -> Versioned[ItemRead] | None:
        query = _update_one_statement(frozenset(values), tags is not None, target.checks)
        extra = {"tags": tags} if tags is not None else {}
        row = await uow.write(query, **values, **target.params(), **extra)
        return None if row is None else _versioned(row, tags)


_UNLINK_ALL = CompiledQuery(
    delete(item_tags).where(item_tags.c.item_id == bindparam("item_id", type_=Integer))
)
_UPSERT_TAGS = CompiledQuery(_upsert_tags(_named_tags()))
_LINK_NAMED_TAGS = CompiledQuery(
    insert(item_tags).from_select(
        ["item_id", "tag_id"],
        select(bindparam("item_id", type_=Integer), Tag.id).where(Tag.name.in_(_named_tags())),
    )
)


@lru_cache(maxsize=_SHAPES)
def _update_stepwise(fields: frozenset[str], checks: int) -> CompiledQuery:
    # The tags are read separately: SQLite renders RETURNING columns unqualified, which
    # would silently mis-correlate a tag subquery.
    return CompiledQuery(_guarded_update(fields, checks).returning(*ITEM_COLUMNS))


_BUMP_TAGGED = CompiledQuery(_bump_tagged())
_DELETE_TAG = CompiledQuery(_delete_tag())


class StepwiseItemWrites(ItemWrites):
    """Each write is a few statements in the unit of work's transaction."""

    async def remove_tag(self, uow: UnitOfWork, name: str) -> bool:
        await uow.write(_BUMP_TAGGED, tag_name=name)
        return await uow.write(_DELETE_TAG, tag_name=name) is not None

    async def create(
        self, uow: UnitOfWork, owner_id: int, values: Values, tags: list[str]
    ) -> Versioned[ItemRead]:
        row = await uow.write(_CREATE, **values, owner_id=owner_id)
        assert row is not None
        if tags:
            await self._link(uow, row["id"], tags)
        return _versioned(row, tags)

    async def update(
        self, uow: UnitOfWork, target: Guarded, values: Values, tags: list[str] | None
    ) -> Versioned[ItemRead] | None:
        query = _update_stepwise(frozenset(values), target.checks)
        row = await uow.write(query, **values, **target.params())
        if row is None:
            return None
        item_id = target.item_id
        if tags is None:
            found = await uow.fetch_one(TAG_NAMES_OF_ITEM, item_id=item_id)
            return _versioned(row, sorted(found["tags"]) if found else [])
        await uow.write(_UNLINK_ALL, item_id=item_id)
        if tags:
            await self._link(uow, item_id, tags)
        return _versioned(row, tags)

    async def _link(self, uow: UnitOfWork, item_id: int, tags: list[str]) -> None:
        await uow.write(_UPSERT_TAGS, tags=tags)
        await uow.write(_LINK_NAMED_TAGS, item_id=item_id, tags=tags)


def _versioned(row: Row, tags: list[str] | None) -> Versioned[ItemRead]:
    return Versioned(to_item_read(row, tags), row["version"])


def item_writes_for(backend: Backend) -> ItemWrites:
    """The item write strategy of a backend: one statement per write where it can."""
    return OneStatementItemWrites() if backend.writable_ctes else StepwiseItemWrites()
