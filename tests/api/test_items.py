"""/items through HTTP on SQLite and PostgreSQL: the issue-2 contract, checked against the DB.

Issue-3 list parameters (filters, sort, cursor) are tested elsewhere; here only skip/limit,
ordering by id and the body shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

from catalog.api.deps import MAX_SKIP
from catalog.db.database import Database
from catalog.models import Item
from tests.api import ITEM_FIELDS, MakeUser
from tests.api.test_item_listing import assert_422
from tests.conftest import Account

Fetch = Callable[..., Awaitable[list[Any]]]

NOT_FOUND = {"detail": "Item not found"}
# Ids no row can have: zero, negative, past 32 bits, past 64 bits (PostgreSQL raises on those).
IMPOSSIBLE_IDS = [0, -1, 2**31, 99999999999, 2**63, 10**30]


def body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /items body, with overrides."""
    return {"name": "Lamp", "price": 12.3} | overrides


async def create(client: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
    """POST an item as `account`; it must succeed."""
    response = await client.post("/items", json=body(**fields), headers=account.headers)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def counts(fetch: Fetch) -> tuple[int, int, int]:
    """Row counts of (items, tags, item_tags)."""
    rows = await fetch(
        "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM tags),"
        " (SELECT count(*) FROM item_tags)"
    )
    return tuple(rows[0])


async def db_item(fetch: Fetch, item_id: int) -> dict[str, Any] | None:
    """The item's row as stored (price as Decimal, tags as a sorted list), or None."""
    rows = await fetch(
        "SELECT name, description, price, is_active, owner_id, updated_at IS NULL AS fresh"
        " FROM items WHERE id = :id",
        id=item_id,
    )
    if not rows:
        return None
    row = rows[0]
    return {
        "name": row.name,
        "description": row.description,
        "price": Decimal(str(row.price)),
        "is_active": bool(row.is_active),
        "owner_id": row.owner_id,
        "fresh": bool(row.fresh),
        "tags": await db_tags_of(fetch, item_id),
    }


async def db_tags_of(fetch: Fetch, item_id: int) -> list[str]:
    """Names of the tags linked to the item in item_tags, sorted by code point."""
    rows = await fetch(
        "SELECT t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id WHERE it.item_id = :id",
        id=item_id,
    )
    return sorted(r.name for r in rows)


async def tag_rows(fetch: Fetch) -> dict[str, int]:
    """Every row of the tags table as {name: id}."""
    return {r.name: r.id for r in await fetch("SELECT id, name FROM tags")}


async def timestamps(database: Database, item_id: int) -> tuple[datetime, datetime | None]:
    """(created_at, updated_at) as the model reads them (timezone-aware)."""
    async with database.autocommit_session() as session:
        row = (
            await session.execute(
                select(Item.created_at, Item.updated_at).where(Item.id == item_id)
            )
        ).one()
    return row.created_at, row.updated_at


def parse_time(value: str) -> datetime:
    """An API timestamp; it must carry a timezone."""
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


@pytest.fixture(params=["PUT", "PATCH"])
def method(request: pytest.FixtureRequest) -> str:
    """PUT and PATCH have the same semantics: every update test runs with both."""
    return str(request.param)


# --- POST /items -----------------------------------------------------------------------


async def test_create_returns_the_item_owned_by_the_caller(
    client: httpx.AsyncClient, user: Account, database: Database, fetch: Fetch
) -> None:
    response = await client.post("/items", json=body(), headers=user.headers)

    assert response.status_code == 201
    item = response.json()
    assert set(item) == ITEM_FIELDS
    assert item["name"] == "Lamp"
    assert item["description"] is None
    assert item["price"] == 12.3
    assert item["is_active"] is True
    assert item["owner_id"] == user.id
    assert item["tags"] == []
    assert item["updated_at"] is None
    created_at, updated_at = await timestamps(database, item["id"])
    assert parse_time(item["created_at"]) == created_at
    assert updated_at is None
    assert await db_item(fetch, item["id"]) == {
        "name": "Lamp",
        "description": None,
        "price": Decimal("12.30"),
        "is_active": True,
        "owner_id": user.id,
        "fresh": True,
        "tags": [],
    }
    assert await counts(fetch) == (1, 0, 0)


async def test_create_with_every_field(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    item = await create(
        client, user, name="Desk", description="oak", price=250, is_active=False, tags=["wood"]
    )

    assert {k: item[k] for k in ("name", "description", "price", "is_active", "tags")} == {
        "name": "Desk",
        "description": "oak",
        "price": 250,
        "is_active": False,
        "tags": ["wood"],
    }
    stored = await db_item(fetch, item["id"])
    assert stored is not None
    assert stored["description"] == "oak"
    assert stored["is_active"] is False
    assert stored["tags"] == ["wood"]


@pytest.mark.parametrize(
    ("price", "stored"),
    [
        (12.3, Decimal("12.3")),
        (0, Decimal(0)),
        (0.01, Decimal("0.01")),
        (7, Decimal(7)),
        (9999999999.99, Decimal("9999999999.99")),
    ],
)
async def test_create_accepts_prices(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, price: float, stored: Decimal
) -> None:
    item = await create(client, user, price=price)

    # A JSON number, not a string: money is exact in the database, a number on the wire.
    assert isinstance(item["price"], int | float)
    assert item["price"] == price
    row = await db_item(fetch, item["id"])
    assert row is not None
    assert row["price"] == stored


@pytest.mark.parametrize(
    "price",
    [10000000000, 10000000000.0, -0.01, -1, 1.234, 0.001, "abc", "", True, False, None, [], {}],
)
async def test_create_rejects_bad_prices(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, price: Any
) -> None:
    response = await client.post("/items", json=body(price=price), headers=user.headers)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)  # FastAPI's validation list
    assert await counts(fetch) == (0, 0, 0)


@pytest.mark.parametrize(
    "literal", ["NaN", "Infinity", "-Infinity", "1e400", '"NaN"', '"Infinity"', '"-inf"']
)
async def test_create_rejects_non_finite_prices(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, literal: str
) -> None:
    # Python's JSON parser accepts bare NaN/Infinity (and 1e400 overflows to inf): the schema
    # must refuse them, and the 422 that echoes them must still be valid JSON.
    content = f'{{"name": "Lamp", "price": {literal}, "tags": ["t"]}}'
    response = await client.post(
        "/items",
        content=content,
        headers=user.headers | {"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "price"]
    assert await counts(fetch) == (0, 0, 0)


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "a\\ud800", "price": 1}',
        '{"name": "a", "description": "\\udfff", "price": 1}',
        '{"name": "a", "price": 1, "tags": ["\\ud800"]}',
        '{"name": "a", "price": 1, "x\\ud800": 1}',
    ],
)
async def test_lone_surrogate_is_422(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, raw: str
) -> None:
    """A lone surrogate is a legal JSON escape but not UTF-8: refused, and echoed safely."""
    response = await client.post(
        "/items", content=raw, headers=user.headers | {"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert await counts(fetch) == (0, 0, 0)


# The 422 body echoes the input, and orjson stops at 64-bit integers.
@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "a", "price": 100000000000000000000000}',
        '{"name": "a", "price": 1, "x": -9223372036854775809}',
        '{"name": "a", "price": 1, "tags": [18446744073709551616]}',
        '{"name": "a", "price": 1, "x": 9223372036854775807}',
    ],
)
async def test_huge_integers_in_a_refused_body_are_422(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, raw: str
) -> None:
    response = await client.post(
        "/items", content=raw, headers=user.headers | {"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert await counts(fetch) == (0, 0, 0)


@pytest.mark.parametrize("field", ["name", "description"])
async def test_nul_character_is_refused_on_every_database(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, field: str
) -> None:
    """PostgreSQL text cannot hold NUL; SQLite could, but both databases must agree."""
    response = await client.post("/items", json=body(**{field: "a\x00b"}), headers=user.headers)

    assert response.status_code == 422
    assert await counts(fetch) == (0, 0, 0)


async def test_create_requires_name_and_price(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    for payload in ({"name": "Lamp"}, {"price": 1}, {}):
        response = await client.post("/items", json=payload, headers=user.headers)
        assert response.status_code == 422, payload
    assert await counts(fetch) == (0, 0, 0)


@pytest.mark.parametrize(
    ("name", "status"), [("", 422), ("x", 201), ("x" * 200, 201), ("x" * 201, 422)]
)
async def test_create_name_length(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, name: str, status: int
) -> None:
    response = await client.post("/items", json=body(name=name), headers=user.headers)

    assert response.status_code == status
    if status == 201:
        assert response.json()["name"] == name
        assert [r.name for r in await fetch("SELECT name FROM items")] == [name]
    else:
        assert await counts(fetch) == (0, 0, 0)


@pytest.mark.parametrize(
    ("description", "status"), [(None, 201), ("", 201), ("d" * 2000, 201), ("d" * 2001, 422)]
)
async def test_create_description_length(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, description: str | None, status: int
) -> None:
    response = await client.post("/items", json=body(description=description), headers=user.headers)

    assert response.status_code == status
    if status == 201:
        assert response.json()["description"] == description
        assert [r.description for r in await fetch("SELECT description FROM items")] == [
            description
        ]
    else:
        assert await counts(fetch) == (0, 0, 0)


async def test_create_normalizes_tags(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    edge = " " + "x" * 50 + " "  # 52 characters, 50 once stripped: allowed
    item = await create(
        client, user, tags=[" Zeta ", "alpha", "ALPHA", "Éclair", "beta", "Beta ", edge]
    )

    expected = ["alpha", "beta", "x" * 50, "zeta", "éclair"]  # code point order: é > z > x
    assert item["tags"] == expected
    assert sorted(await tag_rows(fetch)) == expected
    assert await db_tags_of(fetch, item["id"]) == expected
    assert await counts(fetch) == (1, 5, 5)


async def test_create_reuses_existing_tags(
    client: httpx.AsyncClient, user: Account, other_user: Account, fetch: Fetch
) -> None:
    first = await create(client, user, tags=["red"])
    before = await tag_rows(fetch)

    second = await create(client, other_user, tags=["RED", " blue"])

    assert second["tags"] == ["blue", "red"]
    after = await tag_rows(fetch)
    assert sorted(after) == ["blue", "red"]  # no duplicate "red" row
    assert after["red"] == before["red"]
    assert await db_tags_of(fetch, first["id"]) == ["red"]
    assert await db_tags_of(fetch, second["id"]) == ["blue", "red"]


@pytest.mark.parametrize("tags", [["x" * 51], [""], ["   "], ["ok", "\t"], "notalist", [1]])
async def test_create_rejects_bad_tags(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, tags: Any
) -> None:
    response = await client.post("/items", json=body(tags=tags), headers=user.headers)

    assert response.status_code == 422
    assert await counts(fetch) == (0, 0, 0)  # not even the valid "ok" tag


@pytest.mark.parametrize(
    "extra",
    [{"colour": "red"}, {"owner_id": 1}, {"id": 5}, {"created_at": "2020-01-01T00:00:00Z"}],
)
async def test_create_rejects_unknown_fields(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, extra: dict[str, Any]
) -> None:
    response = await client.post("/items", json=body(**extra), headers=user.headers)

    assert response.status_code == 422
    assert await counts(fetch) == (0, 0, 0)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}]
)
async def test_create_requires_authentication(
    client: httpx.AsyncClient, fetch: Fetch, headers: dict[str, str]
) -> None:
    response = await client.post("/items", json=body(tags=["t"]), headers=headers)

    assert response.status_code == 401
    assert await counts(fetch) == (0, 0, 0)


async def test_inactive_user_cannot_create(
    client: httpx.AsyncClient, make_user: MakeUser, fetch: Fetch
) -> None:
    inactive = await make_user("gone@example.com", is_active=False)

    response = await client.post("/items", json=body(tags=["t"]), headers=inactive.headers)

    assert response.status_code == 403
    assert await counts(fetch) == (0, 0, 0)


@pytest.mark.usefixtures("refuse_tag_links")
async def test_create_failing_after_the_insert_writes_nothing(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    """The database refuses the tag links after the item and its new tag were written
    (one statement on PostgreSQL, one transaction on SQLite): all of it is undone."""
    response = await client.post("/items", json=body(tags=["new"]), headers=user.headers)

    assert response.status_code == 409, response.text
    assert await counts(fetch) == (0, 0, 0)


# --- GET /items ------------------------------------------------------------------------


async def test_list_is_empty_without_items(client: httpx.AsyncClient) -> None:
    response = await client.get("/items")
    assert response.status_code == 200
    assert response.json() == []


async def test_list_is_ordered_by_id_and_includes_inactive_items(
    client: httpx.AsyncClient, user: Account, other_user: Account
) -> None:
    created = [
        await create(client, user, name="b", tags=["x"]),
        await create(client, other_user, name="a", is_active=False),
        await create(client, user, name="c", description="third"),
    ]

    response = await client.get("/items")

    assert response.status_code == 200
    assert response.json() == created  # same bodies as POST returned, in id order
    assert [i["id"] for i in created] == sorted(i["id"] for i in created)


async def test_list_pages_do_not_overlap(client: httpx.AsyncClient, user: Account) -> None:
    ids = [(await create(client, user, name=f"item {n}"))["id"] for n in range(5)]

    pages = []
    for skip in (0, 2, 4):
        response = await client.get("/items", params={"skip": skip, "limit": 2})
        assert response.status_code == 200
        pages.append([i["id"] for i in response.json()])

    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    beyond = await client.get("/items", params={"skip": 5})
    assert beyond.json() == []


async def test_list_limit_defaults_to_100(
    client: httpx.AsyncClient, user: Account, database: Database
) -> None:
    async with database.transaction() as session:
        await session.execute(
            insert(Item),
            [{"name": f"n{n}", "price": Decimal(n), "owner_id": user.id} for n in range(101)],
        )

    default = await client.get("/items")
    full = await client.get("/items", params={"limit": 100})
    rest = await client.get("/items", params={"skip": 100})

    assert len(default.json()) == 100
    assert full.json() == default.json()
    assert len(rest.json()) == 1
    assert rest.json()[0]["id"] > default.json()[-1]["id"]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": -1}, {"skip": -1}, {"limit": "x"}, {"skip": "1.5"}],
)
async def test_list_rejects_bad_paging(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get("/items", params=params)
    assert response.status_code == 422


@pytest.mark.parametrize(
    "skip",
    # All past MAX_SKIP; past 2**63 - 1 the value could not even reach the database as an OFFSET.
    [MAX_SKIP + 1, 2**63 - 1, 2**63, 10**30],
)
async def test_list_skip_past_max_skip_is_422_naming_skip(
    client: httpx.AsyncClient, user: Account, skip: int
) -> None:
    await create(client, user)
    assert_422(await client.get("/items", params={"skip": skip}), "skip")


async def test_list_ignores_unknown_query_parameters(
    client: httpx.AsyncClient, user: Account
) -> None:
    item = await create(client, user)
    response = await client.get("/items", params={"no_such_parameter_xyz": "1"})
    assert response.status_code == 200
    assert response.json() == [item]


async def test_tags_are_sorted_by_code_point(client: httpx.AsyncClient, user: Account) -> None:
    # é (U+00E9) after z; fullwidth z (U+FF5A) before 🍕 (U+1F355), unlike UTF-16 order.
    item = await create(client, user, tags=["zeta", "🍕", "alpha", "éclair", "\uff5a", "Beta"])
    expected = ["alpha", "beta", "zeta", "éclair", "\uff5a", "🍕"]

    assert item["tags"] == expected
    assert (await client.get(f"/items/{item['id']}")).json()["tags"] == expected
    assert (await client.get("/items")).json()[0]["tags"] == expected


# --- GET /items/{id} -------------------------------------------------------------------


async def test_read_one(client: httpx.AsyncClient, user: Account) -> None:
    item = await create(client, user, tags=["b", "a"], description="d")

    response = await client.get(f"/items/{item['id']}")

    assert response.status_code == 200
    assert response.json() == item


@pytest.mark.parametrize("item_id", ["missing", *IMPOSSIBLE_IDS])
async def test_read_missing_is_404(
    client: httpx.AsyncClient, user: Account, item_id: int | str
) -> None:
    existing = await create(client, user)
    if item_id == "missing":
        item_id = existing["id"] + 1

    response = await client.get(f"/items/{item_id}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("item_id", ["abc", "1.5", "1e3"])
async def test_read_non_integer_id_is_422(client: httpx.AsyncClient, item_id: str) -> None:
    response = await client.get(f"/items/{item_id}")
    assert response.status_code == 422


# --- PUT / PATCH /items/{id} -----------------------------------------------------------


async def test_update_changes_only_the_given_fields(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, method: str
) -> None:
    item = await create(
        client, user, name="Desk", description="oak", price=10, is_active=True, tags=["wood"]
    )
    other = await create(client, user, name="Other", tags=["wood"])

    response = await client.request(
        method, f"/items/{item['id']}", json={"price": 5.5}, headers=user.headers
    )

    assert response.status_code == 200
    updated = response.json()
    assert set(updated) == ITEM_FIELDS
    assert updated | {"updated_at": None} == item | {"price": 5.5}
    assert await db_item(fetch, item["id"]) == {
        "name": "Desk",
        "description": "oak",
        "price": Decimal("5.5"),
        "is_active": True,
        "owner_id": user.id,
        "fresh": False,
        "tags": ["wood"],
    }
    # The other item is untouched.
    assert (await db_item(fetch, other["id"]) or {})["fresh"] is True


@pytest.mark.parametrize(
    ("change", "column", "stored"),
    [
        ({"name": "Chair"}, "name", "Chair"),
        ({"description": "pine"}, "description", "pine"),
        ({"description": None}, "description", None),
        ({"is_active": False}, "is_active", False),
        ({"price": 0}, "price", Decimal(0)),
    ],
)
async def test_update_one_field(
    client: httpx.AsyncClient,
    user: Account,
    fetch: Fetch,
    method: str,
    change: dict[str, Any],
    column: str,
    stored: Any,
) -> None:
    item = await create(client, user, name="Desk", description="oak", tags=["wood"])
    before = await db_item(fetch, item["id"])
    assert before is not None

    response = await client.request(
        method, f"/items/{item['id']}", json=change, headers=user.headers
    )

    assert response.status_code == 200
    assert response.json()[column] == change[column]
    assert await db_item(fetch, item["id"]) == before | {column: stored, "fresh": False}


@pytest.mark.parametrize(
    "change",
    [
        {"name": None},
        {"price": None},
        {"is_active": None},
        {"tags": None},
        {"name": ""},
        {"name": "x" * 201},
        {"description": "d" * 2001},
        {"price": -1},
        {"price": 1.005},
        {"price": "abc"},
        {"price": 10**10},
        {"is_active": "maybe"},
        {"tags": ["x" * 51]},
        {"tags": ["  "]},
        {"owner_id": 99},
        {"colour": "red"},
    ],
)
async def test_update_rejects_bad_bodies_and_changes_nothing(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, method: str, change: dict[str, Any]
) -> None:
    item = await create(client, user, description="oak", tags=["wood"])
    before = await db_item(fetch, item["id"])

    response = await client.request(
        method, f"/items/{item['id']}", json=change, headers=user.headers
    )

    assert response.status_code == 422
    assert await db_item(fetch, item["id"]) == before
    assert await counts(fetch) == (1, 1, 1)


async def test_update_with_empty_body_keeps_every_field(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, method: str
) -> None:
    item = await create(client, user, description="oak", tags=["wood"])
    before = await db_item(fetch, item["id"])
    assert before is not None

    response = await client.request(method, f"/items/{item['id']}", json={}, headers=user.headers)

    assert response.status_code == 200
    assert response.json() | {"updated_at": None} == item
    after = await db_item(fetch, item["id"])
    assert after is not None
    assert after | {"fresh": True} == before


async def test_update_tags_replaces_the_set(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, method: str
) -> None:
    item = await create(client, user, tags=["a", "b"])
    url = f"/items/{item['id']}"

    replaced = await client.request(method, url, json={"tags": ["C", " b "]}, headers=user.headers)
    assert replaced.status_code == 200
    assert replaced.json()["tags"] == ["b", "c"]
    assert await db_tags_of(fetch, item["id"]) == ["b", "c"]
    assert sorted(await tag_rows(fetch)) == ["a", "b", "c"]  # "a" is unlinked, not deleted

    kept = await client.request(method, url, json={"name": "renamed"}, headers=user.headers)
    assert kept.json()["tags"] == ["b", "c"]
    assert await db_tags_of(fetch, item["id"]) == ["b", "c"]

    cleared = await client.request(method, url, json={"tags": []}, headers=user.headers)
    assert cleared.json()["tags"] == []
    assert await db_tags_of(fetch, item["id"]) == []
    assert (await client.get(url)).json()["tags"] == []
    assert await counts(fetch) == (1, 3, 0)


async def test_updated_at_is_set_on_every_update(
    client: httpx.AsyncClient, user: Account, database: Database, method: str
) -> None:
    item = await create(client, user)
    url = f"/items/{item['id']}"
    created_at, updated_at = await timestamps(database, item["id"])
    assert updated_at is None

    first = (await client.request(method, url, json={"name": "v2"}, headers=user.headers)).json()
    _, first_stored = await timestamps(database, item["id"])
    assert first_stored is not None
    assert parse_time(first["updated_at"]) == first_stored
    assert first_stored >= created_at
    assert first["created_at"] == item["created_at"]

    # Backdate it rather than sleep: the next update must move it forward again.
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    async with database.transaction() as session:
        await session.execute(update(Item).where(Item.id == item["id"]).values(updated_at=long_ago))

    second = (await client.request(method, url, json={"price": 1}, headers=user.headers)).json()
    _, second_stored = await timestamps(database, item["id"])
    assert second_stored is not None
    assert second_stored > long_ago
    assert second_stored >= first_stored
    assert parse_time(second["updated_at"]) == second_stored


async def test_owner_and_superuser_may_update(
    client: httpx.AsyncClient, user: Account, superuser: Account, fetch: Fetch, method: str
) -> None:
    item = await create(client, user)
    url = f"/items/{item['id']}"

    as_owner = await client.request(method, url, json={"name": "mine"}, headers=user.headers)
    as_root = await client.request(method, url, json={"price": 3}, headers=superuser.headers)

    assert as_owner.status_code == 200
    assert as_root.status_code == 200
    assert as_root.json()["owner_id"] == user.id  # a superuser's edit does not take the item
    stored = await db_item(fetch, item["id"])
    assert stored is not None
    assert (stored["name"], stored["price"], stored["owner_id"]) == ("mine", 3, user.id)


async def test_other_user_may_not_update(
    client: httpx.AsyncClient, user: Account, other_user: Account, fetch: Fetch, method: str
) -> None:
    item = await create(client, user, tags=["wood"])
    before = await db_item(fetch, item["id"])

    response = await client.request(
        method,
        f"/items/{item['id']}",
        json={"name": "stolen", "tags": ["mine"]},
        headers=other_user.headers,
    )

    assert response.status_code == 403
    assert await db_item(fetch, item["id"]) == before
    assert sorted(await tag_rows(fetch)) == ["wood"]  # "mine" was not created either


@pytest.mark.parametrize("item_id", ["missing", *IMPOSSIBLE_IDS])
async def test_update_missing_is_404_for_anyone(
    client: httpx.AsyncClient,
    user: Account,
    other_user: Account,
    superuser: Account,
    fetch: Fetch,
    method: str,
    item_id: int | str,
) -> None:
    existing = await create(client, user)
    if item_id == "missing":
        item_id = existing["id"] + 1

    for account in (user, other_user, superuser):
        response = await client.request(
            method, f"/items/{item_id}", json={"tags": ["new"]}, headers=account.headers
        )
        assert response.status_code == 404, account.email
        assert response.json() == NOT_FOUND
    assert await counts(fetch) == (1, 0, 0)


async def test_update_requires_authentication(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, method: str
) -> None:
    item = await create(client, user)
    before = await db_item(fetch, item["id"])

    response = await client.request(method, f"/items/{item['id']}", json={"name": "anon"})

    assert response.status_code == 401
    assert await db_item(fetch, item["id"]) == before


async def test_update_non_integer_id_is_422(
    client: httpx.AsyncClient, user: Account, method: str
) -> None:
    response = await client.request(method, "/items/abc", json={}, headers=user.headers)
    assert response.status_code == 422


# --- DELETE /items/{id} ----------------------------------------------------------------


async def test_owner_deletes_item_and_its_tag_links(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    item = await create(client, user, tags=["a", "b"])
    kept = await create(client, user, tags=["a"])

    response = await client.delete(f"/items/{item['id']}", headers=user.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert await db_item(fetch, item["id"]) is None
    assert await db_tags_of(fetch, item["id"]) == []
    assert sorted(await tag_rows(fetch)) == ["a", "b"]  # tags themselves stay
    assert await db_tags_of(fetch, kept["id"]) == ["a"]
    assert (await client.get(f"/items/{item['id']}")).status_code == 404
    again = await client.delete(f"/items/{item['id']}", headers=user.headers)
    assert again.status_code == 404


async def test_superuser_deletes_anyones_item(
    client: httpx.AsyncClient, user: Account, superuser: Account, fetch: Fetch
) -> None:
    item = await create(client, user, tags=["a"])

    response = await client.delete(f"/items/{item['id']}", headers=superuser.headers)

    assert response.status_code == 204
    assert await counts(fetch) == (0, 1, 0)


async def test_other_user_may_not_delete(
    client: httpx.AsyncClient, user: Account, other_user: Account, fetch: Fetch
) -> None:
    item = await create(client, user, tags=["a"])

    response = await client.delete(f"/items/{item['id']}", headers=other_user.headers)

    assert response.status_code == 403
    assert await db_item(fetch, item["id"]) is not None
    assert await counts(fetch) == (1, 1, 1)


@pytest.mark.parametrize("item_id", ["missing", *IMPOSSIBLE_IDS])
async def test_delete_missing_is_404(
    client: httpx.AsyncClient,
    user: Account,
    other_user: Account,
    fetch: Fetch,
    item_id: int | str,
) -> None:
    existing = await create(client, user)
    if item_id == "missing":
        item_id = existing["id"] + 1

    for account in (user, other_user):
        response = await client.delete(f"/items/{item_id}", headers=account.headers)
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
    assert await counts(fetch) == (1, 0, 0)


async def test_delete_requires_authentication(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    item = await create(client, user)

    response = await client.delete(f"/items/{item['id']}")

    assert response.status_code == 401
    assert await db_item(fetch, item["id"]) is not None


async def test_delete_non_integer_id_is_422(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.delete("/items/abc", headers=user.headers)
    assert response.status_code == 422


# --- concurrency -----------------------------------------------------------------------


async def test_concurrent_creates_share_new_tags(
    client: httpx.AsyncClient, make_user: MakeUser, fetch: Fetch
) -> None:
    """Ten writers racing to create the same brand-new tags: no error, no duplicate tag."""
    owners = [await make_user() for _ in range(10)]
    names = ["race-a", "race-b", "race-c"]

    responses = await asyncio.gather(
        *(
            client.post("/items", json=body(name=f"n{n}", tags=names), headers=owner.headers)
            for n, owner in enumerate(owners)
        )
    )

    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    assert all(r.json()["tags"] == names for r in responses)
    rows = await fetch("SELECT name, count(*) AS n FROM tags GROUP BY name")
    assert sorted((r.name, r.n) for r in rows) == [(name, 1) for name in names]
    assert await counts(fetch) == (10, 3, 30)
