"""One tag's items read from its links alone: where a list needs no item row to cut its page.

On PostgreSQL each link carries its item's price and is_active (migration 0015, kept by
triggers), indexed as (tag_id, price, item_id) INCLUDE (is_active). A list of one tag
sorted by price, filtered by nothing but price and is_active, reads its page's entries of
that index in order (the items' price index tested each entry's tags instead: 3,600
entries for a page of 50 of a tag on 1.4% of the items), and a total counts that tag's
entries alone. Everywhere, a total of one tag with no other filter counts its links.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import ColumnElement, Integer, bindparam, literal_column

from catalog.db.backends import Backend
from catalog.models import tag_links
from catalog.pagination import SortField, SortKey
from catalog.services.item_filters import price_and_activity
from catalog.services.tag_lookup import still_named

# The filters a link can test by itself (0015), on its copies of the item's columns.
_LINK_COMPARISONS = price_and_activity(tag_links.c.price, tag_links.c.is_active)
# The sort the index gives (the id breaks ties, in either direction of price).
_PRICE_SORTS = frozenset({(("price", False), ("id", False)), (("price", True), ("id", False))})
# The page's keys under the names the outer statement joins and orders by.
KEY_COLUMNS = (tag_links.c.item_id.label("id"), tag_links.c.price.label("price"))


def walks_links(
    backend: Backend,
    scope: str,
    names: frozenset[str],
    tag_ids: tuple[int, ...],
    sort: SortKey | None = None,
) -> bool:
    """Whether a page (`sort` given) or a total (`sort` None) of a list in `scope` (all
    items, one tag's or one owner's) filtered by `names` reads only its one tag's links."""
    if scope == "owner" or len(tag_ids) != 1:
        return False
    if not backend.links_by_price:  # the links hold no price: a total with no filter alone
        return sort is None and not names
    if not names <= _LINK_COMPARISONS.keys():
        return False
    return sort is None or sort.fields in _PRICE_SORTS


def link_conditions(names: frozenset[str], tag_ids: tuple[int, ...]) -> list[ColumnElement[bool]]:
    """The WHERE of one tag's links, with the filters `names` (see `walks_links`)."""
    # A literal id, as for items (item_listing._conditions): the planner knows its frequency.
    tag_id = literal_column(str(int(tag_ids[0])), Integer)
    where = [tag_links.c.tag_id == tag_id, *still_named([tag_id])]
    comparisons = _LINK_COMPARISONS.items()
    where.extend(build(bindparam(name)) for name, build in comparisons if name in names)
    return where


def link_sort_fields(item_fields: dict[str, SortField]) -> dict[str, SortField]:
    """The item sort fields `price` and `id`, read from the links."""
    return {
        "price": replace(item_fields["price"], column=tag_links.c.price),
        "id": replace(item_fields["id"], column=tag_links.c.item_id),
    }
