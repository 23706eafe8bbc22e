"""`HEAD` on every `GET` route: the `GET`'s status and headers, no body (RFC 9110, 9.3.2).

The routes come from the served OpenAPI document, so a new `GET` route is covered without
editing this file. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Account, MakeUser

# Headers that differ between any two responses, whatever the method.
PER_RESPONSE = {"x-request-id", "date"}


async def _get_paths(client: httpx.AsyncClient) -> list[str]:
    document = (await client.get("/openapi.json")).json()
    return [path for path, operations in document["paths"].items() if "get" in operations]


def _concrete(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda found: values[found.group(1)], path)


def _headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_RESPONSE}


async def test_head_answers_every_get_route_with_its_headers_and_no_body(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    admin: Account = await make_user(is_superuser=True)
    created = await client.post(
        "/items", json={"name": "lamp", "price": 3, "tags": ["red"]}, headers=admin.headers
    )
    assert created.status_code == 201
    values = {"item_id": str(created.json()["id"]), "user_id": str(admin.id), "name": "red"}
    paths = await _get_paths(client)
    assert len(paths) >= 10

    for template in paths:
        path = _concrete(template, values)
        get = await client.get(path, headers=admin.headers)
        head = await client.head(path, headers=admin.headers)

        assert get.status_code == 200, (path, get.text)
        assert head.status_code == 200, path
        assert head.content == b"", path
        assert _headers(head) == _headers(get), path
        assert head.headers["content-length"] == str(len(get.content)), path


async def test_head_keeps_the_etag_and_answers_a_matching_if_none_match_with_304(
    client: httpx.AsyncClient, user: Account
) -> None:
    created = await client.post("/items", json={"name": "a", "price": 1}, headers=user.headers)
    path = f"/items/{created.json()['id']}"
    etag = (await client.get(path)).headers["etag"]

    head = await client.head(path)
    conditional = await client.head(path, headers={"If-None-Match": etag})

    assert head.headers["etag"] == etag
    assert conditional.status_code == 304
    assert conditional.content == b""


async def test_head_on_an_unknown_item_is_the_gets_404_without_body(
    client: httpx.AsyncClient,
) -> None:
    get = await client.get("/items/999999")
    head = await client.head("/items/999999")

    assert head.status_code == get.status_code == 404
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


@pytest.mark.parametrize("path", ["/auth/token", "/tags/x"])
async def test_head_on_a_path_without_get_is_405(client: httpx.AsyncClient, path: str) -> None:
    response = await client.head(path)
    assert response.status_code == 405
    assert "GET" not in response.headers["allow"]
    assert "HEAD" not in response.headers["allow"]


async def test_the_openapi_document_has_no_head_operations(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert not [path for path, operations in document["paths"].items() if "head" in operations]
