"""The item lists: filters, sorting, offset and keyset pages, optional total count.

One statement for the page (plus one for the total when asked), whatever the page size
or number of tags: tag names come from a correlated aggregate, and tag filters test the
item itself (`carries_tags`: the item's tag_ids on PostgreSQL, an IN over the tags' links
on SQLite), so LIMIT counts items and pages are never short.

Statements depend only on the *shape* of a request (which filters are present, how
many tags, the sort, offset or keyset), never on its values, which are bound
parameters. Each shape is built and compiled once (`CompiledQuery`, cached below).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any, Literal

import orjson
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Subquery,
    bindparam,
    func,
    literal_column,
    select,
    union_all,
)

from catalog.cursors import decode_datetime, decode_decimal, encode_value
from catalog.db import name_search
from catalog.db.compiled import CompiledQuery
from catalog.db.name_search import trigram_candidates
from catalog.db.types import (
    STRING_LIST,
    carries_tags,
    carries_tags_checked,
    contains_pattern,
    each_string,
    unicode_ilike,
)
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import NotFoundError
from catalog.models import Item, Tag, is_valid_id
from catalog.pagination import (
    SortField,
    SortKey,
    keyset_after,
    order_by,
    row_key,
    split_at_nulls,
)
from catalog.schemas import PRICE_LIMIT, ItemRead
from catalog.services.item_rows import ITEM_COLUMNS, tag_names_column, to_item_read
from catalog.services.tags import TAG_NOT_FOUND
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
# Optional filters that are a plain comparison against one bound value.
_COMPARISONS: dict[str, Callable[[BindParameter[Any]], ColumnElement[bool]]] = {
    "owner_id": lambda p: Item.owner_id == p,
    "is_active": lambda p: Item.is_active == p,
    "min_price": lambda p: Item.price >= p,
    "max_price": lambda p: Item.price <= p,
    "created_after": lambda p: Item.created_at >= p,
    "created_before": lambda p: Item.created_at <= p,
}
Scope = Literal["all", "owner", "tag"]
CENT = Decimal("0.01")
MAX_PRICE = PRICE_LIMIT - CENT  # the largest storable price


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
        data["tags"] = sorted(set(self.tags))
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()

    def price_bounds(self) -> tuple[Decimal | None, Decimal | None] | None:
        """The price bounds in whole cents, None where a bound excludes nothing.

        Prices are whole cents below 10^10, so rounding a lower bound up and an upper
        bound down is exact, and keeps any bound a client sends (1e-9999, 1e9999)
        representable as the column's NUMERIC(12, 2). None: no price can match.
        """
        low, high = self.min_price, self.max_price
        if low is not None:
            if low > MAX_PRICE:
                return None
            low = None if low <= 0 else low.quantize(CENT, rounding=ROUND_CEILING)
        if high is not None:
            if high < 0:
                return None
            high = None if high >= MAX_PRICE else high.quantize(CENT, rounding=ROUND_FLOOR)
        return low, high

    def matches_nothing(self) -> bool:
        """True when no row can match (an impossible owner id or price range)."""
        bad_owner = self.owner_id is not None and not is_valid_id(self.owner_id)
        return bad_owner or self.price_bounds() is None

    def parameters(self) -> dict[str, Any]:
        """The bound values (tags apart: see `_tag_ids`); their names determine the shape."""
        values = {name: getattr(self, name) for name in _COMPARISONS}
        values["min_price"], values["max_price"] = self.price_bounds() or (None, None)
        params: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        if self.q:
            params["q"] = contains_pattern(self.q)
        return params


def _conditions(
    scope: Scope, names: frozenset[str], tag_ids: tuple[int, ...], *, counting: bool = False
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if scope == "owner":
        where.append(Item.owner_id == bindparam("scope_id"))
    if "q_trigrams" in names:  # SQLite: the candidates from the trigram index first
        where.append(trigram_candidates(Item.id, bindparam("q_trigrams")))
    if "q" in names:
        where.append(unicode_ilike(Item.name, bindparam("q")))
    if tag_ids:
        # Literal ids, not parameters: the planner then knows how common each tag is
        # (intarray's statistics) and picks the GIN probe for rare tags, the sort index
        # for common ones. A parameter (or a subquery) would be a flat 0.5% guess.
        ids = [literal_column(str(int(i)), Integer) for i in tag_ids]
        # A page of one tag walks its sort's index, testing the tag (SQLite); a count, or
        # an intersection of tags (few items), may start from the tags' links instead.
        tagged = carries_tags if counting or len(ids) > 1 else carries_tags_checked
        where.append(tagged(Item.id, Item.tag_ids, *ids))
    where.extend(build(bindparam(name)) for name, build in _COMPARISONS.items() if name in names)
    return where


@lru_cache(maxsize=512)
def _page_query(
    scope: Scope,
    names: frozenset[str],
    tag_ids: tuple[int, ...],
    sort: SortKey,
    keyset_nulls: tuple[bool, ...] | None,
    backend: str,
) -> CompiledQuery:
    """The page statement for one request shape; `keyset_nulls` None means offset paging.

    The page is cut in a subquery of ids and sort keys only, then joined to its rows, which
    alone get their other columns and tag names: otherwise the database computes tags for
    every row an OFFSET skips (seconds at depth 900,000), and an index holding the sort key
    and the filtered columns could not answer the cut by itself (an index-only scan).
    """
    keys = {name for name, _ in sort.fields} | {"id"}
    key_columns = [field.column for name, field in ITEM_SORT_FIELDS.items() if name in keys]
    where = _conditions(scope, names, tag_ids)
    after: list[Any] | None = None
    if keyset_nulls is not None:
        # NULL keys change the SQL (IS NULL instead of a comparison), hence part of the shape.
        after = [
            None if is_null else bindparam(f"k_{i}", type_=ITEM_SORT_FIELDS[name].column.type)
            for i, ((name, _), is_null) in enumerate(zip(sort.fields, keyset_nulls, strict=True))
        ]
    if backend == "sqlite" and ITEM_SORT_FIELDS[sort.fields[0][0]].nullable:
        rows = _null_split_page(sort, key_columns, where, after)
    else:
        page = select(*key_columns).where(*where).order_by(*order_by(sort, ITEM_SORT_FIELDS))
        if after is None:
            page = page.offset(bindparam("offset"))
        else:
            page = page.where(keyset_after(sort, ITEM_SORT_FIELDS, after))
        rows = page.limit(bindparam("limit")).subquery("page")
    # The same order again outside: a subquery's order is not guaranteed to survive.
    outer_fields = {
        name: replace(f, column=rows.c[name])
        for name, f in ITEM_SORT_FIELDS.items()
        if name in keys
    }
    statement = (
        select(*ITEM_COLUMNS, tag_names_column())
        .join_from(rows, Item, Item.id == rows.c.id)
        .order_by(*order_by(sort, outer_fields))
    )
    return CompiledQuery(statement)


def _null_split_page(
    sort: SortKey,
    key_columns: list[Any],
    where: list[ColumnElement[bool]],
    after: list[Any] | None,
) -> Subquery:
    """The page of a sort led by `updated_at` on SQLite: its NULL rows and the others, each
    taken in order from an index (`split_at_nulls`), the page cut from the two.

    Most items are never updated: sorted as one, the NULL group (nearly the table) was
    sorted in full for every page (`sort=-updated_at,name`: 1.3 s at 1M items). Each part
    gives at most the rows the page could need (offset + limit), so the final sort is small.
    """
    limit, offset = bindparam("limit", type_=Integer), bindparam("offset", type_=Integer)
    wanted = limit if after is not None else limit + offset
    parts = [
        select(*key_columns).where(*where, *part.where).order_by(*part.order).limit(wanted)
        for part in split_at_nulls(sort, ITEM_SORT_FIELDS, after)
    ]
    arms = [select(*part.subquery().c) for part in parts]
    both = arms[0] if len(arms) == 1 else union_all(*arms)
    rows = both.subquery("parts")
    fields = {
        name: replace(f, column=rows.c[name])
        for name, f in ITEM_SORT_FIELDS.items()
        if name in rows.c
    }
    page = select(*rows.c).order_by(*order_by(sort, fields)).limit(limit)
    if after is None:
        page = page.offset(offset)
    return page.subquery("page")


@lru_cache(maxsize=256)
def _count_query(scope: Scope, names: frozenset[str], tag_ids: tuple[int, ...]) -> CompiledQuery:
    """How many rows match, counting at most `count_cap` of them.

    The LIMIT stops the scan there: a total costs about what a page does, whatever the
    number of matches (an exact count of a million rows reads a million rows).
    """
    matches = (
        select(Item.id)
        .where(*_conditions(scope, names, tag_ids, counting=True))
        .limit(bindparam("count_cap", type_=Integer))
        .subquery("matches")
    )
    return CompiledQuery(select(func.count().label("total")).select_from(matches))


@dataclass(frozen=True)
class ItemListQuery:
    """A request for one page: filters, sort, and either an offset or a keyset position."""

    filters: ItemFilters
    sort: SortKey
    limit: int
    skip: int = 0
    after: list[Any] | None = None  # sort key of the last row already served
    with_total: bool = False
    count_limit: int = 10_000  # totals are exact up to here, a lower bound past it


@dataclass(frozen=True)
class Total:
    """A list's total: `exact`, or False when more than `count` rows match."""

    count: int
    exact: bool = True


@dataclass(frozen=True)
class ItemPage:
    """One page of items, the key to continue after it (None on the last page), the total."""

    items: list[ItemRead]
    next_key: list[Any] | None
    total: Total | None


_TAG_IDS = CompiledQuery(
    select(Tag.id, Tag.name).where(
        Tag.name.in_(
            select(
                each_string(bindparam("names", type_=STRING_LIST))
                .table_valued("value", name="value")
                .c.value
            )
        )
    )
)


async def _tag_ids(uow: UnitOfWork, names: set[str]) -> dict[str, int]:
    """The ids of the named tags that exist (one statement whatever their number)."""
    rows = await uow.fetch_all(_TAG_IDS, names=sorted(names))
    return {str(row["name"]): int(row["id"]) for row in rows}


async def _name_search(
    uow: UnitOfWork, params: dict[str, Any], *, counting: bool
) -> tuple[frozenset[str], frozenset[str]]:
    """SQLite: the shapes (parameter names) of the page and of the count, each with
    `q_trigrams` (added to `params`) when it should start from the trigram index.

    The index's candidates for `q` are counted first, up to what decides (`name_search`):
    few, and the statement starts from them; many, and it walks its index testing names.
    """
    names = frozenset(params)
    trigrams = name_search.trigram_query(params["q"])
    if trigrams is None:
        return names, names
    limits = (name_search.PAGE_CANDIDATES, name_search.COUNT_CANDIDATES)
    probe = max(limits) if counting else limits[0]
    row = await uow.fetch_one(name_search.CANDIDATES, trigrams=trigrams, probe=probe + 1)
    found = int(row["found"]) if row is not None else 0
    params["q_trigrams"] = trigrams
    page, count = (names | {"q_trigrams"} if found <= limit else names for limit in limits)
    return page, count


async def _list(
    uow: UnitOfWork, query: ItemListQuery, scope: Scope = "all", scope_key: int | str = 0
) -> ItemPage:
    """A page; `scope_key` is the owner's id or the tag's name (NotFoundError if unknown)."""
    filters = query.filters
    wanted = set(filters.tags) | ({str(scope_key)} if scope == "tag" else set())
    found = await _tag_ids(uow, wanted) if wanted else {}
    if scope == "tag" and str(scope_key) not in found:
        raise NotFoundError(TAG_NOT_FOUND)
    empty = ItemPage([], None, Total(0) if query.with_total else None)
    if filters.matches_nothing() or len(found) < len(wanted):  # an unknown tag: no item
        return empty
    tag_ids = tuple(sorted(found.values()))
    params = filters.parameters()
    names = count_names = frozenset(params)
    if "q" in params and uow.backend.name == "sqlite":
        names, count_names = await _name_search(uow, params, counting=query.with_total)
    if scope == "owner":
        params["scope_id"] = scope_key
    total = None
    if query.with_total:
        cap = query.count_limit
        count = _count_query(scope, count_names, tag_ids)
        row = await uow.fetch_one(count, **params, count_cap=cap + 1)
        counted = int(row["total"]) if row is not None else 0
        total = Total(counted) if counted <= cap else Total(cap, exact=False)
    if query.after is None:
        statement = _page_query(scope, names, tag_ids, query.sort, None, uow.backend.name)
        params["offset"] = query.skip
    else:
        nulls = tuple(value is None for value in query.after)
        statement = _page_query(scope, names, tag_ids, query.sort, nulls, uow.backend.name)
        params |= {f"k_{i}": v for i, v in enumerate(query.after) if v is not None}
    # One row beyond the page tells whether a next page exists.
    rows = await uow.fetch_all(statement, **params, limit=query.limit + 1)
    next_key = row_key(query.sort, rows[query.limit - 1]) if len(rows) > query.limit else None
    return ItemPage([to_item_read(row) for row in rows[: query.limit]], next_key, total)


async def list_items(uow: UnitOfWork, query: ItemListQuery) -> ItemPage:
    """A page of all items matching the query."""
    return await _list(uow, query)


async def list_user_items(uow: UnitOfWork, user_id: int, query: ItemListQuery) -> ItemPage:
    """A page of one user's items; NotFoundError if there is no such user."""
    if not await user_exists(uow, user_id):
        raise NotFoundError(USER_NOT_FOUND)
    return await _list(uow, query, "owner", user_id)


async def list_tag_items(uow: UnitOfWork, tag_name: str, query: ItemListQuery) -> ItemPage:
    """A page of the items carrying a tag; NotFoundError if there is no such tag."""
    return await _list(uow, query, "tag", tag_name)
