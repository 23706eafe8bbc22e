"""items.tag_ids, the copy of item_tags that tag filters read on PostgreSQL, stays exact.

Concurrent writes to the same items' tags (the service's own PATCHes, tag deletions)
race on purpose; afterwards every tag filter must list what a fresh reading of item_tags
says, and each item's tag_ids must equal its links.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from decimal import Decimal

import httpx
from sqlalchemy import insert, select, text

from catalog.db.database import Database
from catalog.models import Item, Tag, item_tags
from tests.conftest import Account, postgresql_only

TAGS = ["red", "green", "blue", "cyan", "black", "white"]


async def _truth(database: Database) -> dict[str, set[int]]:
    """Item ids per tag name, read from the join table."""
    async with database.transaction() as session:
        rows = (
            await session.execute(
                select(Tag.name, item_tags.c.item_id).join(item_tags, item_tags.c.tag_id == Tag.id)
            )
        ).all()
    truth: dict[str, set[int]] = {name: set() for name in TAGS}
    for name, item_id in rows:
        truth.setdefault(name, set()).add(item_id)
    return truth


async def _listed(client: httpx.AsyncClient, tags: tuple[str, ...]) -> set[int]:
    response = await client.get("/items", params={"tag": list(tags), "limit": 100})
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()}


async def test_tag_filters_match_item_tags_after_concurrent_tag_edits(
    client: httpx.AsyncClient, database: Database, user: Account
) -> None:
    rng = random.Random(14)
    ids = []
    for n in range(6):
        body = {"name": f"item {n}", "price": "1.00", "tags": rng.sample(TAGS, 2)}
        created = await client.post("/items", json=body, headers=user.headers)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])

    async def retag(item_id: int) -> None:
        tags = rng.sample(TAGS, rng.randint(0, 4))
        response = await client.patch(
            f"/items/{item_id}", json={"tags": tags}, headers=user.headers
        )
        assert response.status_code in (200, 503), response.text  # 503: a lock wait ran out

    for _ in range(3):
        await asyncio.gather(*(retag(rng.choice(ids)) for _ in range(40)))
    # A tag deleted while its items are being retagged: its links go by cascade.
    await asyncio.gather(
        client.delete("/tags/cyan", headers=user.headers),
        *(retag(item_id) for item_id in ids),
    )

    truth = await _truth(database)
    assert any(truth.values()), "nothing was tagged: nothing was checked"
    for size in (1, 2):
        for tags in itertools.combinations(TAGS, size):
            expected = set(ids).intersection(*(truth.get(t, set()) for t in tags))
            assert await _listed(client, tags) == expected, tags
    # The tag names an item shows (read from tag_ids on PostgreSQL) are its links' too.
    names = {
        item_id: sorted(t for t, items in truth.items() if item_id in items) for item_id in ids
    }
    listed = (await client.get("/items", params={"limit": 100})).json()
    assert {item["id"]: item["tags"] for item in listed} == names
    for item_id in ids:
        assert (await client.get(f"/items/{item_id}")).json()["tags"] == names[item_id]
    async with database.transaction() as session:
        if database.backend.name == "postgresql":
            stale = await session.scalar(
                text(
                    "SELECT count(*) FROM items i WHERE tag_ids IS DISTINCT FROM coalesce("
                    "(SELECT array_agg(tag_id ORDER BY tag_id) FROM item_tags l"
                    " WHERE l.item_id = i.id), '{}')"
                )
            )
        else:
            stale = await session.scalar(
                text(
                    "SELECT count(*) FROM items i WHERE tag_ids IS NOT (SELECT json_group_array"
                    "(tag_id) FROM (SELECT tag_id FROM item_tags l WHERE l.item_id = i.id"
                    " ORDER BY tag_id))"
                )
            )
    assert stale == 0


@postgresql_only
async def test_an_id_in_tag_ids_without_its_tag_is_left_out_of_the_names(
    client: httpx.AsyncClient, database: Database, user: Account
) -> None:
    """Names are read from `tag_ids` (PostgreSQL). Should the copy ever hold an id no tag
    has (edited by hand, a row re-read under a lock), the item shows the names that exist,
    as the join of `item_tags` would: not a null name, which would fail the response."""
    body = {"name": "lamp", "price": "1.00", "tags": ["red"]}
    created = await client.post("/items", json=body, headers=user.headers)
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    async with database.transaction() as session:
        await session.execute(
            text("UPDATE items SET tag_ids = tag_ids || 2147483647 WHERE id = :id"),
            {"id": item_id},
        )
    listed = await client.get("/items", params={"limit": 10})
    one = await client.get(f"/items/{item_id}")
    assert (listed.status_code, one.status_code) == (200, 200), (listed.text, one.text)
    assert [item["tags"] for item in listed.json()] == [["red"]]
    assert one.json()["tags"] == ["red"]


async def test_a_tag_deleted_and_made_again_lists_by_its_new_id(
    client: httpx.AsyncClient, database: Database, user: Account, superuser: Account
) -> None:
    """Lists remember tag ids by name across requests; a name whose tag was deleted, or
    whose id now names another tag (ids are never reused by the service, but a restore of
    an older backup can give them other meanings), must list what the database holds now."""

    async def create(name: str, tags: list[str]) -> int:
        body = {"name": name, "price": "1.00", "tags": tags}
        created = await client.post("/items", json=body, headers=user.headers)
        assert created.status_code == 201, created.text
        return int(created.json()["id"])

    async def listed(path: str, **params: str | list[str]) -> tuple[int, list[int], str | None]:
        response = await client.get(path, params=params)
        ids = [item["id"] for item in response.json()] if response.status_code == 200 else []
        return response.status_code, ids, response.headers.get("x-total-count")

    async def red_id() -> int | None:
        async with database.transaction() as session:
            found = await session.scalar(select(Tag.id).where(Tag.name == "red"))
        return None if found is None else int(found)

    first = await create("lamp", ["red"])
    old_id = await red_id()
    assert await listed("/items", tag="red") == (200, [first], None)
    assert await listed("/tags/red/items") == (200, [first], None)

    deleted = await client.delete("/tags/red", headers=superuser.headers)
    assert deleted.status_code == 204, deleted.text
    # Red's id given to another name, as a restore of another backup could.
    async with database.transaction() as session:
        await session.execute(insert(Tag).values(id=old_id, name="blue"))
    blue = await create("shelf", ["blue"])
    assert await listed("/items", tag="blue") == (200, [blue], None)
    assert await listed("/items", tag="red", count="true") == (200, [], "0")
    assert await listed("/tags/red/items") == (404, [], None)

    second = await create("desk", ["red"])
    assert await red_id() != old_id
    assert await listed("/items", tag="red", count="true") == (200, [second], "1")
    assert await listed("/items", tag=["red", "green"]) == (200, [], None)
    assert await listed("/tags/red/items", count="true") == (200, [second], "1")


async def test_two_names_remembered_with_one_id_are_looked_up_again(
    client: httpx.AsyncClient, database: Database, user: Account, superuser: Account
) -> None:
    """An id that passed from one name to another (a restore) leaves the first name's
    memory stale while the second is remembered afresh: both then name one id."""

    async def create(name: str, tags: list[str]) -> int:
        body = {"name": name, "price": "1.00", "tags": tags}
        created = await client.post("/items", json=body, headers=user.headers)
        assert created.status_code == 201, created.text
        return int(created.json()["id"])

    async def listed(*tags: str) -> list[int]:
        response = await client.get("/items", params={"tag": list(tags)})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()]

    first = await create("lamp", ["red", "blue"])
    assert await listed("red", "blue") == [first]  # both remembered
    async with database.transaction() as session:
        red_id = await session.scalar(select(Tag.id).where(Tag.name == "red"))
    for name in ("red", "blue"):
        deleted = await client.delete(f"/tags/{name}", headers=superuser.headers)
        assert deleted.status_code == 204, deleted.text
    async with database.transaction() as session:
        await session.execute(insert(Tag).values(id=red_id, name="blue"))
    both = await create("desk", ["red", "blue"])  # red gets a new id, blue has red's old one
    assert await listed("blue") == [both]  # blue remembered afresh, with red's old id

    assert await listed("red", "blue") == [both]


async def test_price_sorted_tag_lists_follow_concurrent_price_and_tag_edits(
    client: httpx.AsyncClient, database: Database, user: Account
) -> None:
    """A tag's items by price, filtered by price and is_active, answer from the links'
    copies of both on PostgreSQL (migration 0015). Prices, activity and tags change
    concurrently; afterwards every such list and its total must equal a fresh reading."""
    rng = random.Random(15)
    ids = []
    for n in range(8):
        body = {"name": f"item {n}", "price": f"{n + 1}.00", "tags": rng.sample(TAGS, 2)}
        created = await client.post("/items", json=body, headers=user.headers)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])

    async def change(item_id: int) -> None:
        body: dict[str, object] = {"price": f"{rng.randint(0, 20)}.50"}
        if rng.random() < 0.5:
            body["is_active"] = rng.random() < 0.5
        if rng.random() < 0.5:
            body["tags"] = rng.sample(TAGS, rng.randint(0, 3))
        response = await client.patch(f"/items/{item_id}", json=body, headers=user.headers)
        assert response.status_code in (200, 503), response.text  # 503: a lock wait ran out

    for _ in range(3):
        await asyncio.gather(*(change(rng.choice(ids)) for _ in range(40)))

    async with database.transaction() as session:
        rows = (
            await session.execute(
                select(Tag.name, Item.id, Item.price, Item.is_active)
                .join(item_tags, item_tags.c.tag_id == Tag.id)
                .join(Item, Item.id == item_tags.c.item_id)
            )
        ).all()
    assert rows, "nothing was tagged: nothing was checked"
    for tag in TAGS:
        for sort, descending in (("-price", True), ("price", False)):
            matches = [
                (price, item_id)
                for name, item_id, price, active in rows
                if name == tag and active and Decimal("2") <= price <= Decimal("15")
            ]
            matches.sort(key=lambda m: (-m[0] if descending else m[0], m[1]))
            params = {"tag": tag, "sort": sort, "is_active": "true", "count": "true"}
            params |= {"min_price": "2", "max_price": "15", "limit": "100"}
            response = await client.get("/items", params=params)
            assert response.status_code == 200, response.text
            assert [item["id"] for item in response.json()] == [m[1] for m in matches]
            assert response.headers["x-total-count"] == str(len(matches))
    if database.backend.name == "postgresql":
        async with database.transaction() as session:
            stale = await session.scalar(
                text(
                    "SELECT count(*) FROM item_tags l JOIN items i ON i.id = l.item_id"
                    " WHERE (l.price, l.is_active) IS DISTINCT FROM (i.price, i.is_active)"
                )
            )
        assert stale == 0
