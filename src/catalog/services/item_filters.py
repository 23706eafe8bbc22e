"""What a client may filter item lists by, and how each filter tests an item.

`ItemFilters` holds a request's filters and turns them into bound values; `COMPARISONS`
are the filters that compare one column with one value, as the list statements build them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import orjson
from sqlalchemy import BindParameter, ColumnElement

from catalog.cursors import encode_value
from catalog.db.types import contains_pattern, unindexed
from catalog.models import Item, is_valid_id
from catalog.schemas import PRICE_LIMIT

Comparisons = dict[str, Callable[[BindParameter[Any]], ColumnElement[bool]]]


def price_and_activity(price: Any, is_active: Any) -> Comparisons:
    """The price range and is_active filters, on these columns (the item's, or a copy)."""
    return {
        "is_active": lambda p: is_active == p,
        "min_price": lambda p: price >= p,
        "max_price": lambda p: price <= p,
    }


# Optional filters that are a plain comparison against one bound value.
COMPARISONS: Comparisons = {
    "owner_id": lambda p: Item.owner_id == p,
    **price_and_activity(Item.price, Item.is_active),
    "created_after": lambda p: Item.created_at >= p,
    "created_before": lambda p: Item.created_at <= p,
}
# The creation range tested row by row (SQLite: `item_listing._wide_creation_range`).
WALKED: Comparisons = {
    "created_after": lambda p: unindexed(Item.created_at) >= p,
    "created_before": lambda p: unindexed(Item.created_at) <= p,
}
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
        values = {name: getattr(self, name) for name in COMPARISONS}
        values["min_price"], values["max_price"] = self.price_bounds() or (None, None)
        params: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        if self.q:
            params["q"] = contains_pattern(self.q)
        return params
