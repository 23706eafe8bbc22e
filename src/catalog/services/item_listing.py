"""The item lists: filters, sorting, offset and keyset pages, optional total count.

One statement for the page (plus one for the total when asked), whatever the page size
or number of tags: tag names come from a correlated aggregate, and tag filters test the
item itself (`carries_tags`: the item's tag_ids on PostgreSQL, an IN over the tags' links
on SQLite), so LIMIT counts items and pages are never short.

Statements depend only on the *shape* of a request (which filters are present, how
many tags, the sort, offset or keyset), never on its values, which are bound
parameters. Each shape is built and compiled once (`CompiledQuery`, cached below).
Where the planner lacks a fact (SQLite: no value statistics), a probe counts it first and
picks the shape: how many candidates a `q` has, how wide a creation range is.
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
    bindparam,
    func,
    literal_column,
    select,
)

from catalog.cursors import decode_datetime, decode_decimal, encode_value
from catalog.db import name_search
from catalog.db.compiled import CompiledQuery
from catalog.db.name_search import trigram_candidates
from catalog.db.types import (
    carries_tags,
    carries_tags_checked,
    contains_pattern,
    folded_contains,
    unindexed,
)
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import NotFoundError
from catalog.models import Item, is_valid_id, item_tags
from catalog.pagination import (
    SortField,
    SortKey,
    keyset_after,
    null_split_page,
    order_by,
    row_key,
)
from catalog.schemas import PRICE_LIMIT, ItemRead
from catalog.services import tag_lookup
from catalog.services.item_rows import ITEM_COLUMNS, tag_names_column, to_item_read
from catalog.services.tag_lookup import still_named
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
# The creation range tested row by row (SQLite: `_wide_creation_range`).
_WALKED: dict[str, Callable[[BindParameter[Any]], ColumnElement[bool]]] = {
    "created_after": lambda p: unindexed(Item.created_at) >= p,
    "created_before": lambda p: unindexed(Item.created_at) <= p,
}
# More rows than this in a creation range, and a page sorted by name or price walks that
# sort's index rather than the range's (`_wide_creation_range`).
WIDE_RANGE_ROWS = 20_000
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
        where.append(folded_contains(Item.name, bindparam("q")))
    if tag_ids:
        # Literal ids, not parameters: the planner then knows how common each tag is
        # (intarray's statistics) and picks the GIN probe for rare tags, the sort index
        # for common ones. A parameter (or a subquery) would be a flat 0.5% guess.
        ids = [literal_column(str(int(i)), Integer) for i in tag_ids]
        # A page of one tag walks its sort's index, testing the tag (SQLite); a count, or
        # an intersection of tags (few items), may start from the tags' links instead.
        tagged = carries_tags if counting or len(ids) > 1 else carries_tags_checked
        where.append(tagged(Item.id, Item.tag_ids, *ids))
        where.extend(still_named(ids))
    comparisons = _COMPARISONS | (_WALKED if "created_walk" in names else {})
    where.extend(build(bindparam(name)) for name, build in comparisons.items() if name in names)
    return where


@lru_cache(maxsize=512)
def _page_query(
    scope: Scope,
    names: frozenset[str],
    tag_ids: tuple[int, ...],
    sort: SortKey,
    keyset_nulls: tuple[bool, ...] | None,
    split_nulls: bool,
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
    if split_nulls:
        rows = null_split_page(sort, ITEM_SORT_FIELDS, key_columns, where, after)
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


@lru_cache(maxsize=256)
def _count_query(scope: Scope, names: frozenset[str], tag_ids: tuple[int, ...]) -> CompiledQuery:
    """How many rows match, counting at most `count_cap` of them.

    The LIMIT stops the scan there: a total costs about what a page does, whatever the
    number of matches (an exact count of a million rows reads a million rows).
    """
    cap = bindparam("count_cap", type_=Integer)
    if not names and scope != "owner" and len(tag_ids) == 1:
        # One tag and nothing else: its links (the truth `tag_ids` copies) answer in an
        # index-only walk of (tag_id, item_id), without visiting one item's row; through
        # the items, each of the cap's rows cost a page of the table (27 ms at 1M).
        tag_id = literal_column(str(int(tag_ids[0])), Integer)
        rows = select(item_tags.c.item_id).where(
            item_tags.c.tag_id == tag_id, *still_named([tag_id])
        )
    else:
        rows = select(Item.id).where(*_conditions(scope, names, tag_ids, counting=True))
    matches = rows.limit(cap).subquery("matches")
    # Planned for its values: a generic plan cannot tell a narrow price range from a wide
    # one, and walked half the table for a count that the tag's index answers in 1/20th.
    total = select(func.count().label("total")).select_from(matches)
    return CompiledQuery(total, custom_plan=True)


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


# The keys between a nullable lead and the id that an index orders, NULLs placed as the
# sort places them (migration 0008: (updated_at, id) and (updated_at, name, id), both
# directions of updated_at).
_NULL_PLACING_INDEXES: frozenset[tuple[tuple[str, bool], ...]] = frozenset({(), (("name", False),)})


@lru_cache(maxsize=4)
def _range_probe(names: frozenset[str]) -> CompiledQuery:
    rows = select(Item.id).where(*(_COMPARISONS[name](bindparam(name)) for name in sorted(names)))
    matches = rows.limit(bindparam("probe", type_=Integer)).subquery("in_range")
    return CompiledQuery(select(func.count().label("found")).select_from(matches))


async def _wide_creation_range(uow: UnitOfWork, params: dict[str, Any], sort: SortKey) -> bool:
    """SQLite: whether a page sorted by name or price should test its creation range on
    each row of the sort's index, rather than read the range from its own index.

    SQLite keeps no statistics of values (no STAT4): it takes any range for a 64th of the
    rows, so it read a range of half the items through its index and sorted them all
    (`date wide sort=price`: 0.4 s), where the walk finds a page in a hundred rows. A probe
    counts the range (an index-only count, stopped past WIDE_RANGE_ROWS). Not under other
    orders: ids and creation dates follow creation, so that walk would pass every row
    before the range first.
    """
    present = frozenset(name for name in _WALKED if name in params)
    if not present or sort.fields[0][0] not in ("name", "price"):
        return False
    row = await uow.fetch_one(_range_probe(present), **params, probe=WIDE_RANGE_ROWS + 1)
    return row is not None and int(row["found"]) > WIDE_RANGE_ROWS


async def _list(
    uow: UnitOfWork, query: ItemListQuery, scope: Scope = "all", scope_key: int | str = 0
) -> ItemPage:
    """A page; `scope_key` is the owner's id or the tag's name (NotFoundError if unknown)."""
    filters = query.filters
    wanted = set(filters.tags) | ({str(scope_key)} if scope == "tag" else set())
    remembered = tag_lookup.remembered(uow, wanted) if wanted else None
    page = None
    if remembered is not None and not filters.matches_nothing():
        page = await _page(uow, query, scope, scope_key, remembered)
        if page.items:  # the statement found every tag still so named
            return page
    found = await tag_lookup.look_up(uow, wanted) if wanted else {}
    if scope == "tag" and str(scope_key) not in found:
        raise NotFoundError(TAG_NOT_FOUND)
    if filters.matches_nothing() or len(found) < len(wanted):  # an unknown tag: no item
        return ItemPage([], None, Total(0) if query.with_total else None)
    if page is not None and found == remembered:
        return page  # the tags are as remembered: that empty page was the answer
    return await _page(uow, query, scope, scope_key, found)


async def _page(
    uow: UnitOfWork,
    query: ItemListQuery,
    scope: Scope,
    scope_key: int | str,
    found: dict[str, int],
) -> ItemPage:
    """The page (and total) of a request whose tags have the ids `found`."""
    filters = query.filters
    tag_ids = tuple(sorted(found.values()))
    tag_names = tag_lookup.name_parameters(found)
    params = filters.parameters()
    names = count_names = frozenset(params)
    if "q" in params and uow.backend.name_trigram_table:
        names, count_names = await name_search.plan(uow, params, counting=query.with_total)
    if not uow.backend.value_statistics and await _wide_creation_range(uow, params, query.sort):
        names |= {"created_walk"}  # the page only: a count reads the range's index alone
    if scope == "owner":
        params["scope_id"] = scope_key
    # A sort led by a nullable field as two index walks (its NULL rows, then the others)
    # where indexes cannot place NULLs (SQLite), or where no index holds the whole order:
    # a single ORDER BY then sorts the NULL group in full, and that is most items (those
    # never updated). Each part has an index where the NULL rows are few, or many.
    fields = query.sort.fields
    nullable_lead = ITEM_SORT_FIELDS[fields[0][0]].nullable
    split_nulls = nullable_lead and (
        not uow.backend.indexes_place_nulls or fields[1:-1] not in _NULL_PLACING_INDEXES
    )
    # One row beyond the page tells whether a next page exists.
    page_params = params | tag_names | {"limit": query.limit + 1}
    if query.after is None:
        statement = _page_query(scope, names, tag_ids, query.sort, None, split_nulls)
        page_params["offset"] = query.skip
    else:
        nulls = tuple(value is None for value in query.after)
        statement = _page_query(scope, names, tag_ids, query.sort, nulls, split_nulls)
        page_params |= {f"k_{i}": v for i, v in enumerate(query.after) if v is not None}
    total = None
    if query.with_total:
        # The count runs beside the page, not before it: a request waits for the slower.
        count = _count_query(scope, count_names, tag_ids)
        count_params = params | tag_names | {"count_cap": query.count_limit + 1}
        counted_rows, rows = await uow.fetch_beside(count, count_params, statement, page_params)
        counted = int(counted_rows[0]["total"]) if counted_rows else 0
        cap = query.count_limit
        total = Total(counted) if counted <= cap else Total(cap, exact=False)
    else:
        rows = await uow.fetch_all(statement, **page_params)
    next_key = row_key(query.sort, rows[query.limit - 1]) if len(rows) > query.limit else None
    return ItemPage([to_item_read(row) for row in rows[: query.limit]], next_key, total)


async def list_items(uow: UnitOfWork, query: ItemListQuery) -> ItemPage:
    """A page of all items matching the query."""
    return await _list(uow, query)


async def list_user_items(uow: UnitOfWork, user_id: int, query: ItemListQuery) -> ItemPage:
    """A page of one user's items; NotFoundError if there is no such user."""
    if not is_valid_id(user_id):  # beyond the column's range: no such user, no statement
        raise NotFoundError(USER_NOT_FOUND)
    page = await _list(uow, query, "owner", user_id)
    # An item's owner exists (a foreign key): only an empty page must ask.
    if not page.items and not await user_exists(uow, user_id):
        raise NotFoundError(USER_NOT_FOUND)
    return page


async def list_tag_items(uow: UnitOfWork, tag_name: str, query: ItemListQuery) -> ItemPage:
    """A page of the items carrying a tag; NotFoundError if there is no such tag."""
    return await _list(uow, query, "tag", tag_name)
