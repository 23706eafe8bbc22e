"""The request values of the shape matrix, chosen from the data itself (any dataset size).

Everything is read with plain SQL that runs on PostgreSQL and SQLite alike: tags by
popularity (rare, median, common), substrings of 1, 2 and 3+ characters that match many
item names or none, an owner with a typical number of items, price and date ranges that
are narrow (~0.1% of the items) or wide (half of them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

UNKNOWN_TAG = "no-such-tag-bench"
# Characters tried, in order, for a substring that matches no item name.
_NONE_CANDIDATES = ("x", "q", "j", "z", "7", "#", "~")
_NONE_PAIRS = ("zq", "qx", "jj", "xq", "#~")
_NONE_LONG = ("zqxj", "qqxz", "xxjq")
SEARCH_SHARE = 0.005  # the 3+ character search matches about this share of the items
SAMPLE_ROWS = 20_000


@dataclass(frozen=True)
class Params:
    """Values for the shapes; every string is a query-string value as a client sends it."""

    items: int
    rare_tag: str
    median_tag: str
    common_tag: str
    second_tag: str  # the second most common: with common_tag, two tags that co-occur
    top_tags: tuple[str, ...]  # the most used tags, most used first
    owner_id: int
    q1_many: str
    q1_none: str
    q2_many: str
    q2_none: str
    q3: str
    q3_many: str  # the most common 3-letter substring: a search that matches a lot
    q3_none: str
    needle: str  # a whole item name: matches a handful of items
    price_q1: str
    price_q3: str
    price_narrow: tuple[str, str]
    date_narrow: tuple[str, str]
    date_wide: tuple[str, str]


def _scalar(conn: Connection, sql: str, **params: Any) -> Any:
    return conn.execute(text(sql), params).scalar()


def _contains(dialect: str) -> str:
    """Plain substring test, case-folded by lower() (the seeded names are ASCII)."""
    return (
        "strpos(lower(name), lower(:q)) > 0"
        if dialect == "postgresql"
        else "instr(lower(name), lower(:q)) > 0"
    )


def _matches(conn: Connection, q: str, limit: int | None = None) -> int:
    where = _contains(conn.dialect.name)
    if limit is None:
        return int(_scalar(conn, f"SELECT count(*) FROM items WHERE {where}", q=q))
    sql = f"SELECT count(*) FROM (SELECT 1 FROM items WHERE {where} LIMIT :n) AS m"
    return int(_scalar(conn, sql, q=q, n=limit))


def _first_matching_nothing(conn: Connection, candidates: tuple[str, ...]) -> str:
    for candidate in candidates:
        if _matches(conn, candidate, 1) == 0:
            return candidate
    raise SystemExit(f"shapes: every one of {candidates} matches an item name")


def _nth_price(conn: Connection, n: int) -> str:
    value = _scalar(conn, "SELECT price FROM items ORDER BY price LIMIT 1 OFFSET :n", n=n)
    return f"{float(value):.2f}"


def _as_datetime(value: Any) -> datetime:
    """A created_at as read back: a datetime on PostgreSQL, ISO text on SQLite (UTC)."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _grams(names: list[str], size: int) -> Counter[str]:
    grams: Counter[str] = Counter()
    for name in names:
        grams.update(
            {
                name[i : i + size]
                for i in range(len(name) - size + 1)
                if name[i : i + size].isalpha()
            }
        )
    return grams


def choose(conn: Connection) -> Params:
    """Read the dataset and choose every value the shapes need."""
    items = int(_scalar(conn, "SELECT count(*) FROM items"))
    if items < 100:
        raise SystemExit(f"shapes: the dataset has {items} items; seed at least 100")
    tags = [
        str(name)
        for (name,) in conn.execute(
            text(
                "SELECT t.name FROM tags t JOIN item_tags it ON it.tag_id = t.id"
                " GROUP BY t.name ORDER BY count(*), t.name"
            )
        )
    ]
    if len(tags) < 3:
        raise SystemExit("shapes: the dataset needs at least 3 tags in use")
    owners = int(_scalar(conn, "SELECT count(DISTINCT owner_id) FROM items"))
    owner = conn.execute(
        text(
            "SELECT owner_id FROM items GROUP BY owner_id ORDER BY count(*), owner_id"
            " LIMIT 1 OFFSET :n"
        ),
        {"n": owners // 2},
    )
    owner_id = int(owner.scalar() or 0)
    step = max(1, items // SAMPLE_ROWS)
    sample = [
        str(name).lower()
        for (name,) in conn.execute(
            text("SELECT name FROM items WHERE id % :step = 0 ORDER BY id"), {"step": step}
        )
    ]
    letters, pairs = _grams(sample, 1), _grams(sample, 2)
    wanted = SEARCH_SHARE * len(sample)
    longer = _grams(sample, 3) + _grams(sample, 4)
    q3 = min(sorted(longer), key=lambda g: abs(longer[g] - wanted))
    middle = _scalar(conn, "SELECT name FROM items ORDER BY id LIMIT 1 OFFSET :n", n=items // 2)
    created = [
        _as_datetime(
            _scalar(conn, "SELECT created_at FROM items ORDER BY created_at LIMIT 1 OFFSET :n", n=n)
        )
        for n in (items // 4, items // 2)
    ]
    return Params(
        items=items,
        rare_tag=tags[0],
        median_tag=tags[len(tags) // 2],
        common_tag=tags[-1],
        second_tag=tags[-2],
        top_tags=tuple(reversed(tags[-20:])),
        owner_id=owner_id,
        q1_many=letters.most_common(1)[0][0],
        q1_none=_first_matching_nothing(conn, _NONE_CANDIDATES),
        q2_many=pairs.most_common(1)[0][0],
        q2_none=_first_matching_nothing(conn, _NONE_PAIRS),
        q3=q3,
        q3_many=_grams(sample, 3).most_common(1)[0][0],
        q3_none=_first_matching_nothing(conn, _NONE_LONG),
        needle=str(middle).lower(),
        price_q1=_nth_price(conn, items // 4),
        price_q3=_nth_price(conn, items * 3 // 4),
        price_narrow=(_nth_price(conn, items // 2), _nth_price(conn, items // 2 + items // 1000)),
        date_narrow=(_iso(created[1]), _iso(created[1] + timedelta(hours=8))),
        date_wide=(_iso(created[0]), _iso(created[0] + timedelta(days=182))),
    )
