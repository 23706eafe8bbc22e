"""/tags through HTTP on SQLite and PostgreSQL: the issue-2 contract, checked against the DB."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.api.test_item_listing import assert_422
from tests.api.test_items import Fetch, counts, create, db_tags_of, tag_rows
from tests.conftest import Account

# Code point order: é (U+00E9) after z, fullwidth z (U+FF5A) before 🍕 (U+1F355).
NAMES_IN_ORDER = ["alpha", "beta", "zeta", "éclair", "\uff5a", "🍕"]


async def create_tag(client: httpx.AsyncClient, account: Account, name: Any) -> httpx.Response:
    """POST /tags as `account`."""
    return await client.post("/tags", json={"name": name}, headers=account.headers)


def assert_not_found(response: httpx.Response) -> None:
    """404 with the `{"detail": "..."}` error body."""
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail


# --- GET /tags -------------------------------------------------------------------------


async def test_list_is_empty_without_tags(client: httpx.AsyncClient) -> None:
    response = await client.get("/tags")
    assert response.status_code == 200
    assert response.json() == []


async def test_list_is_ordered_by_code_point_with_item_counts(
    client: httpx.AsyncClient, user: Account, other_user: Account, fetch: Fetch
) -> None:
    for name in reversed(NAMES_IN_ORDER):
        assert (await create_tag(client, user, name)).status_code == 201
    await create(client, user, tags=["alpha", "beta"])
    await create(client, other_user, tags=["alpha"], is_active=False)  # inactive items count
    await create(client, other_user, tags=[])

    response = await client.get("/tags")

    assert response.status_code == 200
    ids = await tag_rows(fetch)
    usage = {"alpha": 2, "beta": 1}
    assert response.json() == [
        {"id": ids[name], "name": name, "item_count": usage.get(name, 0)} for name in NAMES_IN_ORDER
    ]


async def test_list_pages_do_not_overlap(client: httpx.AsyncClient, user: Account) -> None:
    for name in ("e", "d", "c", "b", "a"):
        await create_tag(client, user, name)

    pages = [
        [t["name"] for t in (await client.get("/tags", params={"skip": s, "limit": 2})).json()]
        for s in (0, 2, 4, 6)
    ]

    assert pages == [["a", "b"], ["c", "d"], ["e"], []]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"skip": -1}, {"limit": "x"}])
async def test_list_rejects_bad_paging(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert (await client.get("/tags", params=params)).status_code == 422


@pytest.mark.parametrize("path", ["/tags", "/tags/t/items"])
async def test_list_skip_beyond_bigint_is_422_naming_skip(
    client: httpx.AsyncClient, user: Account, path: str
) -> None:
    await create(client, user, tags=["t"])
    # Past MAX_SKIP (2**31 - 1): refused before it could reach the database as an OFFSET.
    assert_422(await client.get(path, params={"skip": 2**63}), "skip")


# --- POST /tags ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("foo", "foo"), ("  Foo ", "foo"), ("ÉCLAIR", "éclair"), (" " + "X" * 50, "x" * 50)],
)
async def test_create_normalizes_the_name(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, sent: str, stored: str
) -> None:
    response = await create_tag(client, user, sent)

    assert response.status_code == 201
    ids = await tag_rows(fetch)
    assert ids == {stored: ids[stored]}
    assert response.json() == {"id": ids[stored], "name": stored, "item_count": 0}


@pytest.mark.parametrize("again", ["foo", " Foo ", "FOO", "\tfoo\n"])
async def test_create_duplicate_is_409(
    client: httpx.AsyncClient, user: Account, other_user: Account, fetch: Fetch, again: str
) -> None:
    first = await create_tag(client, user, "foo")

    response = await create_tag(client, other_user, again)

    assert first.status_code == 201
    assert response.status_code == 409
    assert isinstance(response.json()["detail"], str)
    assert await tag_rows(fetch) == {"foo": first.json()["id"]}


async def test_create_tag_already_made_by_an_item_is_409(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    await create(client, user, tags=["lamp"])

    response = await create_tag(client, user, "Lamp")

    assert response.status_code == 409
    assert list(await tag_rows(fetch)) == ["lamp"]


@pytest.mark.parametrize(
    "payload",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 51},
        {"name": None},
        {"name": 5},
        {"name": ["a"]},
        {},
        {"name": "ok", "colour": "red"},
    ],
)
async def test_create_rejects_invalid_bodies(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, payload: dict[str, Any]
) -> None:
    response = await client.post("/tags", json=payload, headers=user.headers)

    assert response.status_code == 422
    assert await tag_rows(fetch) == {}


async def test_create_lone_surrogate_is_422(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    response = await client.post(
        "/tags",
        content='{"name": "a\\ud800"}',
        headers=user.headers | {"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert await tag_rows(fetch) == {}


async def test_create_requires_authentication(client: httpx.AsyncClient, fetch: Fetch) -> None:
    response = await client.post("/tags", json={"name": "foo"})

    assert response.status_code == 401
    assert await tag_rows(fetch) == {}


async def test_concurrent_creates_of_one_name_give_one_201(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    """The unique constraint decides the race: one winner, the others 409, never a 500."""
    spellings = ["dup", " Dup", "DUP ", "dUp"] * 3

    responses = await asyncio.gather(*(create_tag(client, user, s) for s in spellings))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (len(spellings) - 1), [r.text for r in responses]
    assert list(await tag_rows(fetch)) == ["dup"]


# --- GET /tags/{name}/items ------------------------------------------------------------


async def test_tag_items_are_the_tagged_ones_in_id_order(
    client: httpx.AsyncClient, user: Account, other_user: Account
) -> None:
    first = await create(client, user, tags=["red", "blue"])
    await create(client, user, tags=["blue"])
    second = await create(client, other_user, tags=["red"], is_active=False)
    third = await create(client, user, tags=["RED"])

    response = await client.get("/tags/red/items")

    assert response.status_code == 200
    tagged = [first["id"], second["id"], third["id"]]
    expected = [(await client.get(f"/items/{i}")).json() for i in tagged]
    assert response.json() == expected


async def test_tag_items_pages(client: httpx.AsyncClient, user: Account) -> None:
    ids = [(await create(client, user, tags=["t"]))["id"] for _ in range(5)]
    await create(client, user, tags=["other"])

    pages = [
        [
            i["id"]
            for i in (await client.get("/tags/t/items", params={"skip": s, "limit": 2})).json()
        ]
        for s in (0, 2, 4)
    ]

    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    bad = await client.get("/tags/t/items", params={"limit": 101})
    assert bad.status_code == 422


@pytest.mark.parametrize("path_name", ["foo", "FOO", "%20Foo%20", "fOo"])
async def test_tag_items_path_name_is_normalized(
    client: httpx.AsyncClient, user: Account, path_name: str
) -> None:
    item = await create(client, user, tags=["foo"])

    response = await client.get(f"/tags/{path_name}/items")

    assert response.status_code == 200
    assert [i["id"] for i in response.json()] == [item["id"]]


async def test_tag_without_items_lists_nothing(client: httpx.AsyncClient, user: Account) -> None:
    await create_tag(client, user, "lonely")
    await create(client, user, tags=["busy"])

    response = await client.get("/tags/lonely/items")

    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("path_name", ["nope", "x" * 51, "%20"])
async def test_tag_items_of_unknown_tag_is_404(
    client: httpx.AsyncClient, user: Account, path_name: str
) -> None:
    await create(client, user, tags=["known"])
    assert_not_found(await client.get(f"/tags/{path_name}/items"))


# --- DELETE /tags/{name} ---------------------------------------------------------------


async def test_superuser_deletes_a_tag_from_every_item(
    client: httpx.AsyncClient, user: Account, superuser: Account, fetch: Fetch
) -> None:
    tagged = await create(client, user, tags=["gone", "kept"])
    other = await create(client, user, tags=["gone"])

    response = await client.delete("/tags/gone", headers=superuser.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert list(await tag_rows(fetch)) == ["kept"]
    assert await db_tags_of(fetch, tagged["id"]) == ["kept"]
    assert await db_tags_of(fetch, other["id"]) == []
    assert await counts(fetch) == (2, 1, 1)  # the items stay
    assert (await client.get(f"/items/{tagged['id']}")).json()["tags"] == ["kept"]
    assert (await client.get(f"/items/{other['id']}")).json()["tags"] == []
    assert_not_found(await client.get("/tags/gone/items"))
    assert_not_found(await client.delete("/tags/gone", headers=superuser.headers))


async def test_delete_path_name_is_normalized(
    client: httpx.AsyncClient, user: Account, superuser: Account, fetch: Fetch
) -> None:
    await create(client, user, tags=["foo"])

    response = await client.delete("/tags/%20FOO", headers=superuser.headers)

    assert response.status_code == 204
    assert await counts(fetch) == (1, 0, 0)


async def test_only_superusers_delete_tags(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    await create(client, user, tags=["mine"])

    anonymous = await client.delete("/tags/mine")
    as_user = await client.delete("/tags/mine", headers=user.headers)

    assert anonymous.status_code == 401
    assert as_user.status_code == 403
    assert await counts(fetch) == (1, 1, 1)


async def test_delete_unknown_tag_is_404(
    client: httpx.AsyncClient, user: Account, superuser: Account, fetch: Fetch
) -> None:
    await create(client, user, tags=["known"])

    assert_not_found(await client.delete("/tags/unknown", headers=superuser.headers))
    assert await counts(fetch) == (1, 1, 1)
