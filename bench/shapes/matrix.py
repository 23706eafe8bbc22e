"""The shapes: one kind of list request each, with values chosen from the data (`params`).

Labels name the *kind* of value (`tag=rare`, `q=1ch-none`), so the same matrix reads the
same on every dataset. Shapes the issue measured as slow carry the issue's figure in `note`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from bench.shapes.params import UNKNOWN_TAG, Params

PAGE = "50"
SORT_FIELDS = ("id", "name", "price", "created_at", "updated_at")
DEEP_SKIP_SHARE = 0.9  # the bench's deep_skip: offset at 90% of the items


@dataclass(frozen=True)
class Shape:
    """One list request: an endpoint path and its query; `pages` > 1 follows Link rel=next."""

    label: str
    path: str
    query: tuple[tuple[str, str], ...]
    pages: int = 1
    note: str = ""

    @property
    def url(self) -> str:
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path


def _shape(label: str, path: str, *pairs: tuple[str, str], pages: int = 1, note: str = "") -> Shape:
    query = (*pairs, ("limit", PAGE)) if not any(k == "limit" for k, _ in pairs) else pairs
    return Shape(label, path, tuple(query), pages, note)


def _tags(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple(("tag", name) for name in names)


def _sorts() -> list[Shape]:
    shapes = []
    for field in SORT_FIELDS:
        for sort in (field, f"-{field}"):
            shapes.append(_shape(f"sort={sort}", "/items", ("sort", sort)))
    for sort, note in (
        ("-updated_at,name", "issue: 534 ms"),
        ("updated_at,-price", ""),
        ("price,-created_at", ""),
        ("name,-price", ""),
        ("-created_at,name,price", ""),
    ):
        shapes.append(_shape(f"sort={sort}", "/items", ("sort", sort), note=note))
    return shapes


def _tag_filters(p: Params, max_tags: int) -> list[Shape]:
    top = p.top_tags
    many = tuple((top * (max_tags // len(top) + 1))[:max_tags]) if top else ()
    return [
        _shape("tag=rare", "/items", *_tags(p.rare_tag)),
        _shape("tag=common", "/items", *_tags(p.common_tag)),
        _shape("tag=unknown", "/items", *_tags(UNKNOWN_TAG)),
        _shape("tag=rare sort=name", "/items", *_tags(p.rare_tag), ("sort", "name")),
        _shape("tag=common sort=-price", "/items", *_tags(p.common_tag), ("sort", "-price")),
        _shape("tag=common count", "/items", *_tags(p.common_tag), ("count", "true")),
        _shape("tag=rare count", "/items", *_tags(p.rare_tag), ("count", "true")),
        _shape("2 tags", "/items", *_tags(p.common_tag, p.second_tag), note="issue: 157 ms"),
        _shape(
            "2 tags sort=-updated_at",
            "/items",
            *_tags(p.common_tag, p.median_tag),
            ("sort", "-updated_at"),
        ),
        _shape("3 tags count", "/items", *_tags(*top[:3]), ("count", "true")),
        _shape(f"{max_tags} tags", "/items", *_tags(*many)),
        _shape("tag=common+unknown", "/items", *_tags(p.common_tag, UNKNOWN_TAG)),
    ]


def _searches(p: Params) -> list[Shape]:
    return [
        _shape("q=1ch-many", "/items", ("q", p.q1_many)),
        _shape("q=1ch-none", "/items", ("q", p.q1_none), note="issue: 455 ms"),
        _shape(
            "q=1ch sort=price count",
            "/items",
            ("q", "x"),
            ("sort", "price"),
            ("count", "true"),
            note="issue: 967 ms (q=x)",
        ),
        _shape("q=2ch-many", "/items", ("q", p.q2_many)),
        _shape("q=2ch-none", "/items", ("q", p.q2_none)),
        _shape(
            "q=2ch tag sort=-updated_at",
            "/items",
            ("q", p.q2_many),
            *_tags(p.median_tag),
            ("sort", "-updated_at"),
            note="issue: 776 ms",
        ),
        _shape("q=3ch", "/items", ("q", p.q3)),
        _shape("q=3ch-many", "/items", ("q", p.q3_many)),
        _shape(
            "q=3ch-many sort=price count",
            "/items",
            ("q", p.q3_many),
            ("sort", "price"),
            ("count", "true"),
        ),
        _shape(
            "q=3ch-many tag sort=-updated_at",
            "/items",
            ("q", p.q3_many),
            *_tags(p.median_tag),
            ("sort", "-updated_at"),
        ),
        _shape("q=3ch count", "/items", ("q", p.q3), ("count", "true")),
        _shape("q=3ch sort=-price", "/items", ("q", p.q3), ("sort", "-price")),
        _shape("q=3ch-none", "/items", ("q", p.q3_none)),
        _shape("q=needle", "/items", ("q", p.needle)),
        _shape("q=3ch pages 1-3", "/items", ("q", p.q3), pages=3),
    ]


def _filters(p: Params) -> list[Shape]:
    price = (("min_price", p.price_q1), ("max_price", p.price_q3))
    filtered = (*_tags(p.median_tag), *price, ("is_active", "true"), ("sort", "-price"))
    narrow_price = (("min_price", p.price_narrow[0]), ("max_price", p.price_narrow[1]))
    narrow_date = (("created_after", p.date_narrow[0]), ("created_before", p.date_narrow[1]))
    wide_date = (("created_after", p.date_wide[0]), ("created_before", p.date_wide[1]))
    return [
        _shape("filtered", "/items", *filtered),
        _shape("filtered pages 1-3", "/items", *filtered, pages=3, note="issue: 288 ms"),
        _shape("filtered count", "/items", *filtered, ("count", "true")),
        _shape("owner", "/items", ("owner_id", str(p.owner_id))),
        _shape("owner sort=-price", "/items", ("owner_id", str(p.owner_id)), ("sort", "-price")),
        _shape("active sort=-created_at", "/items", ("is_active", "true"), ("sort", "-created_at")),
        _shape(
            "inactive sort=name count",
            "/items",
            ("is_active", "false"),
            ("sort", "name"),
            ("count", "true"),
            note="issue: 120 ms",
        ),
        _shape("price narrow", "/items", *narrow_price),
        _shape("price narrow sort=name", "/items", *narrow_price, ("sort", "name")),
        _shape("price wide sort=-price", "/items", *price, ("sort", "-price")),
        _shape("date narrow", "/items", *narrow_date),
        _shape("date narrow sort=-price", "/items", *narrow_date, ("sort", "-price")),
        _shape("date wide sort=-created_at", "/items", *wide_date, ("sort", "-created_at")),
        _shape(
            "date wide sort=price count", "/items", *wide_date, ("sort", "price"), ("count", "true")
        ),
        _shape("count", "/items", ("count", "true")),
    ]


def _pages(p: Params) -> list[Shape]:
    deep = int(p.items * DEEP_SKIP_SHARE)
    return [
        _shape("skip=1000", "/items", ("skip", "1000")),
        _shape("skip=9950 sort=-price", "/items", ("skip", "9950"), ("sort", "-price")),
        _shape("skip=90% (deep_skip)", "/items", ("skip", str(deep))),
        _shape("pages 1-3", "/items", pages=3),
        _shape("sort=-updated_at,name pages 1-3", "/items", ("sort", "-updated_at,name"), pages=3),
        _shape("sort=-price pages 1-3", "/items", ("sort", "-price"), pages=3),
    ]


def _scoped(p: Params) -> list[Shape]:
    user = f"/users/{p.owner_id}/items"
    common, rare = (f"/tags/{quote(name, safe='')}/items" for name in (p.common_tag, p.rare_tag))
    return [
        _shape("user", user),
        _shape("user sort=-price count", user, ("sort", "-price"), ("count", "true")),
        _shape("user q=3ch", user, ("q", p.q3)),
        _shape("user tag=common sort=name", user, *_tags(p.common_tag), ("sort", "name")),
        _shape("user sort=-updated_at pages 1-3", user, ("sort", "-updated_at"), pages=3),
        _shape("tags/common", common),
        _shape("tags/common sort=-created_at", common, ("sort", "-created_at")),
        _shape("tags/common count", common, ("count", "true")),
        _shape(
            "tags/common price sort=-price",
            common,
            ("min_price", p.price_q1),
            ("max_price", p.price_q3),
            ("sort", "-price"),
        ),
        _shape("tags/common tag=second", common, *_tags(p.second_tag)),
        _shape("tags/common q=2ch", common, ("q", p.q2_many)),
        _shape("tags/rare sort=name pages 1-3", rare, ("sort", "name"), pages=3),
        _shape("tags/unknown", f"/tags/{UNKNOWN_TAG}/items"),
    ]


def build(p: Params, max_tags: int) -> list[Shape]:
    """Every shape, in a fixed order."""
    return [
        _shape("page", "/items"),
        *_sorts(),
        *_tag_filters(p, max_tags),
        *_searches(p),
        *_filters(p),
        *_pages(p),
        *_scoped(p),
    ]
