"""Row versions and conditional requests: ETag, If-Match (412), If-None-Match (304), 428.

The check is part of the write's own WHERE: 20 concurrent read-modify-write clients
using If-Match lose no update.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from catalog.config import Settings
from tests.api import Fetch
from tests.api.test_outages import app_client
from tests.conftest import Account


async def _item(client: httpx.AsyncClient, owner: Account, **fields: object) -> httpx.Response:
    body = {"name": "lamp", "price": "10.00", "tags": ["red"]} | fields
    response = await client.post("/items", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response


async def test_items_carry_an_etag_that_moves_with_every_change(
    client: httpx.AsyncClient, user: Account
) -> None:
    created = await _item(client, user)
    item_id = created.json()["id"]
    assert created.headers["etag"] == f'"{item_id}.1"'
    assert created.headers["location"] == f"/items/{item_id}"
    read = await client.get(f"/items/{item_id}")
    assert read.headers["etag"] == f'"{item_id}.1"'

    patched = await client.patch(f"/items/{item_id}", json={"name": "x"}, headers=user.headers)
    put = await client.put(f"/items/{item_id}", json={"tags": []}, headers=user.headers)
    assert (patched.headers["etag"], put.headers["etag"]) == (f'"{item_id}.2"', f'"{item_id}.3"')
    assert (await client.get(f"/items/{item_id}")).headers["etag"] == f'"{item_id}.3"'


async def test_if_match_applies_a_write_only_to_the_version_it_names(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    item_id = (await _item(client, user)).json()["id"]
    current = f'"{item_id}.1"'
    stale = f'"{item_id}.0"'

    refused = await client.patch(
        f"/items/{item_id}", json={"name": "lost"}, headers=user.headers | {"If-Match": stale}
    )
    assert refused.status_code == 412
    assert refused.json() == {"detail": "The resource was changed by someone else"}
    assert await fetch("SELECT name, version FROM items") == [("lamp", 1)]

    applied = await client.patch(
        f"/items/{item_id}", json={"name": "kept"}, headers=user.headers | {"If-Match": current}
    )
    assert applied.status_code == 200
    assert applied.headers["etag"] == f'"{item_id}.2"'
    # The ETag it was based on is now stale in turn.
    again = await client.patch(
        f"/items/{item_id}", json={"name": "lost"}, headers=user.headers | {"If-Match": current}
    )
    assert again.status_code == 412
    assert await fetch("SELECT name, version FROM items") == [("kept", 2)]


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        ("*", 200),  # any current representation
        ('"{id}.0", "{id}.1"', 200),  # a list: any of them
        ('W/"{id}.1"', 412),  # If-Match compares strongly: a weak tag never matches
        ('"{other}.1"', 412),  # another item's tag
        ("1", 412),  # malformed
        ('"{id}.99999999999999"', 412),
    ],
)
async def test_if_match_forms(
    client: httpx.AsyncClient, user: Account, if_match: str, status: int
) -> None:
    item_id = (await _item(client, user)).json()["id"]
    other = (await _item(client, user)).json()["id"]
    header = if_match.format(id=item_id, other=other)
    response = await client.patch(
        f"/items/{item_id}", json={"name": "x"}, headers=user.headers | {"If-Match": header}
    )
    assert response.status_code == status, response.text


async def test_a_failed_precondition_does_not_reveal_what_the_caller_may_not_see(
    client: httpx.AsyncClient, user: Account, other_user: Account
) -> None:
    item_id = (await _item(client, user)).json()["id"]
    stale = {"If-Match": f'"{item_id}.7"'}
    someone_elses = await client.patch(
        f"/items/{item_id}", json={"name": "x"}, headers=other_user.headers | stale
    )
    missing = await client.patch("/items/999999", json={"name": "x"}, headers=user.headers | stale)
    assert (someone_elses.status_code, missing.status_code) == (403, 404)


async def test_delete_with_if_match(client: httpx.AsyncClient, user: Account, fetch: Fetch) -> None:
    item_id = (await _item(client, user)).json()["id"]
    stale = await client.delete(
        f"/items/{item_id}", headers=user.headers | {"If-Match": f'"{item_id}.2"'}
    )
    assert stale.status_code == 412
    assert await fetch("SELECT id FROM items") == [(item_id,)]
    current = await client.delete(
        f"/items/{item_id}", headers=user.headers | {"If-Match": f'"{item_id}.1"'}
    )
    assert current.status_code == 204
    assert await fetch("SELECT id FROM items") == []


async def test_if_none_match_answers_304_while_the_copy_is_current(
    client: httpx.AsyncClient, user: Account
) -> None:
    item_id = (await _item(client, user)).json()["id"]
    etag = (await client.get(f"/items/{item_id}")).headers["etag"]

    unchanged = await client.get(f"/items/{item_id}", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    weak = await client.get(f"/items/{item_id}", headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304  # If-None-Match compares weakly

    await client.patch(f"/items/{item_id}", json={"price": 11}, headers=user.headers)
    changed = await client.get(f"/items/{item_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["price"] == 11


async def test_deleting_a_tag_moves_the_etag_of_the_items_that_carried_it(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    tagged = (await _item(client, user, tags=["red"])).json()["id"]
    untagged = (await _item(client, user, tags=["blue"])).json()["id"]
    before = {i: (await client.get(f"/items/{i}")).headers["etag"] for i in (tagged, untagged)}

    assert (await client.delete("/tags/red", headers=superuser.headers)).status_code == 204

    after = {i: (await client.get(f"/items/{i}")).headers["etag"] for i in (tagged, untagged)}
    assert after[tagged] != before[tagged]
    assert after[untagged] == before[untagged]
    stale = await client.get(f"/items/{tagged}", headers={"If-None-Match": before[tagged]})
    assert stale.status_code == 200
    assert stale.json()["tags"] == []


async def test_users_carry_versions_too(
    client: httpx.AsyncClient, user: Account, superuser: Account, fetch: Fetch
) -> None:
    me = await client.get("/users/me", headers=user.headers)
    etag = me.headers["etag"]
    assert etag == f'"{user.id}.1"'
    assert (await client.get(f"/users/{user.id}", headers=superuser.headers)).headers[
        "etag"
    ] == etag
    not_modified = await client.get("/users/me", headers=user.headers | {"If-None-Match": etag})
    assert not_modified.status_code == 304

    renamed = await client.patch(
        f"/users/{user.id}",
        json={"full_name": "Ada"},
        headers=superuser.headers | {"If-Match": etag},
    )
    assert renamed.headers["etag"] == f'"{user.id}.2"'
    lost = await client.patch(
        "/users/me", json={"full_name": "Lost"}, headers=user.headers | {"If-Match": etag}
    )
    assert lost.status_code == 412
    refused = await client.delete(
        f"/users/{user.id}", headers=superuser.headers | {"If-Match": etag}
    )
    assert refused.status_code == 412
    assert await fetch("SELECT full_name FROM users WHERE id = :id", id=user.id) == [("Ada",)]


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings, require_if_match=True) as (client, _):
        yield client


async def test_require_if_match_refuses_unconditional_writes_with_428(
    client: httpx.AsyncClient, strict_client: httpx.AsyncClient, user: Account
) -> None:
    item_id = (await _item(client, user)).json()["id"]
    url = f"/items/{item_id}"
    for method in ("PUT", "PATCH"):
        response = await strict_client.request(
            method, url, json={"name": "x"}, headers=user.headers
        )
        assert response.status_code == 428
        assert response.json() == {"detail": "This write requires an If-Match header"}
    assert (await strict_client.delete(url, headers=user.headers)).status_code == 428
    assert (await strict_client.get(url)).status_code == 200  # reads need nothing
    conditional = await strict_client.patch(
        url, json={"name": "x"}, headers=user.headers | {"If-Match": "*"}
    )
    assert conditional.status_code == 200


async def test_concurrent_read_modify_write_clients_lose_no_update(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    """20 clients each add 1 to the price, reading first and writing with If-Match,
    retrying on 412: the final price counts every increment."""
    item_id = (await _item(client, user, price="0.00")).json()["id"]
    url = f"/items/{item_id}"

    async def add_one() -> int:
        for attempt in range(1, 200):
            read = await client.get(url)
            price = Decimal(str(read.json()["price"])) + 1
            write = await client.patch(
                url,
                json={"price": str(price)},
                headers=user.headers | {"If-Match": read.headers["etag"]},
            )
            if write.status_code == 200:
                return attempt
            assert write.status_code == 412, write.text
        raise AssertionError("never got through")

    attempts = await asyncio.gather(*(add_one() for _ in range(20)))
    assert await fetch("SELECT price, version FROM items") == [(Decimal("20.00"), 21)]
    assert sum(attempts) >= 20
