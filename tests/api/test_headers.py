"""Headers and URLs (issue 7, section 3), on SQLite and PostgreSQL.

`Link` built from the route and parameters (percent-encoded, relative or under
PUBLIC_BASE_URL, never from Host), ALLOWED_HOSTS, security headers on every response,
`no-store` on tokens and accounts, CORS from settings, docs switchable off, and OPTIONS
and 405 with the path's `Allow` list.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from catalog.api.app import create_app
from catalog.config import Settings
from catalog.db.database import Database
from tests.api import asgi_client, login
from tests.api.test_item_listing import links
from tests.conftest import Account

INJECTION = 'z>; rel="prev", <https:evil.example>; rel="next'


def _app(settings: Settings, database: Database, **changes: Any) -> FastAPI:
    return create_app(settings.model_copy(update=changes), database)


async def _tagged(client: httpx.AsyncClient, user: Account, tag: str, count: int = 3) -> None:
    for n in range(count):
        body = {"name": f"item{n}", "price": 1, "tags": [tag]}
        assert (await client.post("/items", json=body, headers=user.headers)).status_code == 201


# --- Link -------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["query", "path"])
async def test_a_tag_cannot_inject_a_link(
    client: httpx.AsyncClient, user: Account, where: str
) -> None:
    await _tagged(client, user, INJECTION)
    if where == "query":
        response = await client.get("/items", params={"tag": INJECTION, "limit": 1})
    else:
        response = await client.get(f"/tags/{INJECTION}/items", params={"limit": 1})

    assert response.status_code == 200
    assert links(response).keys() == {"next"}
    header = response.headers["link"]
    assert header.count("<") == header.count(">") == 1
    assert "evil" not in header.split(">")[1]
    following = await client.get(links(response)["next"])
    assert [item["name"] for item in following.json()] == ["item1"]


@pytest.mark.parametrize("where", ["query", "path"])
async def test_a_non_ascii_tag_gives_an_encoded_link(
    client: httpx.AsyncClient, user: Account, where: str
) -> None:
    # Before: a 500 (the header could not be encoded as latin-1).
    await _tagged(client, user, "日本")
    if where == "query":
        response = await client.get("/items", params={"tag": "日本", "limit": 1})
    else:
        response = await client.get("/tags/日本/items", params={"limit": 1})

    assert response.status_code == 200
    header = response.headers["link"]
    assert header.isascii()
    assert "%E6%97%A5%E6%9C%AC" in header
    following = await client.get(links(response)["next"])
    assert [item["name"] for item in following.json()] == ["item1"]


async def test_the_link_ignores_the_host_header(
    app: FastAPI, client: httpx.AsyncClient, user: Account
) -> None:
    await _tagged(client, user, "x")
    async with asgi_client(app, host="evil.example") as spoofed:
        response = await spoofed.get("/items", params={"limit": 1})

    assert response.headers["link"].startswith("</items?")
    assert "evil" not in response.headers["link"]


async def test_the_link_carries_only_the_lists_parameters(
    client: httpx.AsyncClient, user: Account
) -> None:
    await _tagged(client, user, "x")
    response = await client.get(
        "/items", params={"limit": 1, "skip": 0, "debug": "<script>", "q": "ite", "count": "true"}
    )
    query = parse_qs(urlsplit(links(response)["next"]).query)
    assert set(query) == {"q", "sort", "limit", "count", "cursor"}


async def test_a_public_base_url_makes_links_absolute(
    settings: Settings, database: Database, client: httpx.AsyncClient, user: Account
) -> None:
    await _tagged(client, user, "x")
    app = _app(settings, database, public_base_url="https://api.example.com/catalog/")
    async with asgi_client(app, host="evil.example") as other:
        response = await other.get(f"/users/{user.id}/items", params={"limit": 1})

    assert links(response)["next"].startswith(
        f"https://api.example.com/catalog/users/{user.id}/items?"
    )


async def test_a_trailing_slash_is_not_redirected_through_the_host(
    app: FastAPI,
) -> None:
    async with asgi_client(app, host="evil.example") as spoofed:
        response = await spoofed.get("/items/")
    assert response.status_code == 404
    assert "location" not in response.headers


# --- ALLOWED_HOSTS ------------------------------------------------------------------------------


async def test_allowed_hosts_refuse_other_hosts(settings: Settings, database: Database) -> None:
    app = _app(settings, database, allowed_hosts=("api.example.com", "*.example.org"))
    async with asgi_client(app, host="evil.example") as evil:
        refused = await evil.get("/health")
    async with asgi_client(app, host="api.example.com:8443") as good:
        allowed = await good.get("/health")
    async with asgi_client(app, host="eu.example.org") as sub:
        wildcard = await sub.get("/health")

    assert refused.status_code == 400
    assert refused.json() == {"detail": "Invalid host header"}
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert allowed.status_code == wildcard.status_code == 200


async def test_any_host_is_served_by_default(app: FastAPI) -> None:
    async with asgi_client(app, host="anything.example") as client:
        assert (await client.get("/health")).status_code == 200


# --- security headers ------------------------------------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
RESPONSES: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/health", {}, 200),
    ("GET", "/items", {}, 200),
    ("GET", "/no-such-path", {}, 404),
    ("DELETE", "/health", {}, 405),
    ("GET", "/items?limit=0", {}, 422),
    ("GET", "/users/me", {}, 401),
    ("OPTIONS", "/items", {}, 204),
    ("POST", "/users", {"content": b"x" * (2 * 1024 * 1024)}, 413),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    RESPONSES,
    ids=[f"{m}-{p}-{s}" for m, p, _, s in RESPONSES],
)
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = await client.request(method, path, **kwargs)

    assert response.status_code == status
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    assert "server" not in response.headers


async def test_the_docs_page_gets_a_policy_of_its_own(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    policies = response.headers.get_list("content-security-policy")
    assert len(policies) == 1  # its own (tests/api/test_docs.py), not a second one
    assert "frame-ancestors 'none'" in policies[0]


async def test_tokens_and_accounts_are_never_cached(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    token = await login(client, user.email, user.password)
    responses = [
        token,
        await client.get("/users/me", headers=user.headers),
        await client.patch("/users/me", json={"full_name": "A"}, headers=user.headers),
        await client.get("/users", headers=superuser.headers),
        await client.get(f"/users/{user.id}", headers=superuser.headers),
        await client.post("/users", json={"email": "n@example.com", "password": "password123"}),
    ]
    assert [r.headers.get("cache-control") for r in responses] == ["no-store"] * len(responses)
    assert "cache-control" not in (await client.get("/items")).headers


# --- CORS --------------------------------------------------------------------------------------


async def test_no_cross_origin_access_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/items", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers


async def test_cors_origins_from_settings(settings: Settings, database: Database) -> None:
    app = _app(settings, database, cors_origins=("https://app.example.com",))
    async with asgi_client(app) as client:
        allowed = await client.get("/items", headers={"Origin": "https://app.example.com"})
        other = await client.get("/items", headers={"Origin": "https://evil.example"})
        preflight = await client.options(
            "/items",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )

    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "link" in allowed.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["access-control-allow-methods"]


# --- docs switch -------------------------------------------------------------------------------


async def test_docs_and_openapi_can_be_switched_off(settings: Settings, database: Database) -> None:
    async with asgi_client(_app(settings, database, docs_enabled=False)) as client:
        statuses = [(await client.get(p)).status_code for p in ("/docs", "/redoc", "/openapi.json")]
        health = await client.get("/health")
    assert statuses == [404, 404, 404]
    assert health.status_code == 200


async def test_docs_are_on_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.get("/openapi.json")).status_code == 200


# --- OPTIONS and 405 ---------------------------------------------------------------------------

ALLOW = {
    "/items": "GET, HEAD, OPTIONS, POST",
    "/items/1": "DELETE, GET, HEAD, OPTIONS, PATCH, PUT",
    "/users/me": "GET, HEAD, OPTIONS, PATCH",
    "/users/1": "DELETE, GET, HEAD, OPTIONS, PATCH",
    "/tags/x": "DELETE, OPTIONS",
    "/health": "GET, HEAD, OPTIONS",
}


@pytest.mark.parametrize(("path", "allow"), ALLOW.items())
async def test_options_lists_the_paths_methods(
    client: httpx.AsyncClient, path: str, allow: str
) -> None:
    response = await client.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == allow


async def test_options_on_an_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.options("/no-such-path")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/items"), ("POST", "/items/1"), ("PUT", "/users/me"), ("GET", "/tags/x")],
)
async def test_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == ALLOW[path]
    assert response.json() == {"detail": "Method Not Allowed"}


async def test_delete_users_me_is_405_not_422(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.delete("/users/me", headers=user.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == ALLOW["/users/me"]
