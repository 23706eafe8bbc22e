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

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
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
    folded_contains,
)
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import NotFoundError
from catalog.models import Item, is_valid_id, tag_links
from catalog.pagination import (
    SortField,
    SortKey,
    keyset_after,
    null_split_page,
    order_by,
    row_key,
)
from catalog.schemas import ItemRead
from catalog.services import link_walk, tag_lookup
from catalog.services.item_filters import COMPARISONS, WALKED, ItemFilters
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
# More rows than this in a creation range, and a page sorted by name or price walks that
# sort's index rather than the range's (`_wide_creation_range`).
WIDE_RANGE_ROWS = 20_000
Scope = Literal["all", "owner", "tag"]


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
        # (the column's most common elements) and picks the GIN probe for rare tags, the
        # sort index for common ones. A parameter (or a subquery) would be a flat guess.
        ids = [literal_column(str(int(i)), Integer) for i in tag_ids]
        # A page of one tag walks its sort's index, testing the tag (SQLite); a count, or
        # an intersection of tags (few items), may start from the tags' links instead.
        tagged = carries_tags if counting or len(ids) > 1 else carries_tags_checked
        where.append(tagged(Item.id, Item.tag_ids, *ids))
        where.extend(still_named(ids))
    comparisons = COMPARISONS | (WALKED if "created_walk" in names else {})
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
    via_links: bool = False,
) -> CompiledQuery:
    """The page statement for one request shape; `keyset_nulls` None means offset paging.

    The page is cut in a subquery of ids and sort keys only, then joined to its rows, which
    alone get their other columns and tag names: otherwise the database computes tags for
    every row an OFFSET skips (seconds at depth 900,000), and an index holding the sort key
    and the filtered columns could not answer the cut by itself (an index-only scan).
    `via_links`: cut from the tag's links (`link_walk`).
    """
    keys = {name for name, _ in sort.fields} | {"id"}
    fields = ITEM_SORT_FIELDS
    if via_links:
        fields = link_walk.link_sort_fields(ITEM_SORT_FIELDS)
        key_columns: list[Any] = list(link_walk.KEY_COLUMNS)
        where = link_walk.link_conditions(names, tag_ids)
    else:
        key_columns = [field.column for name, field in fields.items() if name in keys]
        where = _conditions(scope, names, tag_ids)
    after: list[Any] | None = None
    if keyset_nulls is not None:
        # NULL keys change the SQL (IS NULL instead of a comparison), hence part of the shape.
        after = [
            None if is_null else bindparam(f"k_{i}", type_=ITEM_SORT_FIELDS[name].column.type)
            for i, ((name, _), is_null) in enumerate(zip(sort.fields, keyset_nulls, strict=True))
        ]
    if split_nulls:
        rows = null_split_page(sort, fields, key_columns, where, after)
    else:
        page = select(*key_columns).where(*where).order_by(*order_by(sort, fields))
        if after is None:
            page = page.offset(bindparam("offset"))
        else:
            page = page.where(keyset_after(sort, fields, after))
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
def _count_query(
    scope: Scope, names: frozenset[str], tag_ids: tuple[int, ...], via_links: bool = False
) -> CompiledQuery:
    """How many rows match, counting at most `count_cap` of them.

    The LIMIT stops the scan there: a total costs about what a page does, whatever the
    number of matches (an exact count of a million rows reads a million rows).
    """
    cap = bindparam("count_cap", type_=Integer)
    if via_links:
        # One tag's links answer in an index-only walk of that tag's entries, without
        # visiting one item's row; through the items, each of the cap's rows cost a page
        # of the table (27 ms at 1M).
        rows = select(tag_links.c.item_id).where(*link_walk.link_conditions(names, tag_ids))
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
    rows = select(Item.id).where(*(COMPARISONS[name](bindparam(name)) for name in sorted(names)))
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
    present = frozenset(name for name in WALKED if name in params)
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
    backend = uow.backend
    via_links = link_walk.walks_links(backend, scope, names, tag_ids, query.sort)
    if query.after is None:
        statement = _page_query(scope, names, tag_ids, query.sort, None, split_nulls, via_links)
        page_params["offset"] = query.skip
    else:
        nulls = tuple(value is None for value in query.after)
        statement = _page_query(scope, names, tag_ids, query.sort, nulls, split_nulls, via_links)
        page_params |= {f"k_{i}": v for i, v in enumerate(query.after) if v is not None}
    total = None
    if query.with_total:
        # The count runs beside the page, not before it: a request waits for the slower.
        counts_links = link_walk.walks_links(backend, scope, count_names, tag_ids)
        count = _count_query(scope, count_names, tag_ids, counts_links)
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
