"""Bounded work per request (issue 7, section 1), on SQLite and PostgreSQL.

Every repeatable or open-ended input has a cap answered before it costs anything: tag
filters, tags per item, `q`, query parameters and query string size, cursor size, body
size (413 before parsing, chunked bodies too), and 422s that never echo large inputs or
grow with the number of unknown fields. The most expensive request the caps allow is
run against the database and its cost bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from catalog.api.app import create_app
from catalog.api.errors import MAX_ECHOED_CHARACTERS, MAX_LISTED_ERRORS
from catalog.api.listing import MAX_CURSOR_LENGTH
from catalog.config import Settings
from catalog.db.database import Database
from catalog.schemas import MAX_TAGS_PER_ITEM
from catalog.services import item_listing
from tests.api import asgi_client
from tests.conftest import Account

MAX_TAGS = 10  # the default of MAX_TAG_FILTERS
LIST_PATHS = ["/items", "/users/1/items", "/tags/red/items"]


def assert_422_naming(response: httpx.Response, *location: str) -> None:
    assert response.status_code == 422, response.text
    locations = [tuple(error["loc"][: len(location)]) for error in response.json()["detail"]]
    assert location in locations, locations


# --- tag filters ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", LIST_PATHS)
@pytest.mark.parametrize("count", [MAX_TAGS + 1, 100, 1000])
async def test_more_tag_filters_than_the_cap_are_422_naming_tag(
    client: httpx.AsyncClient, path: str, count: int
) -> None:
    # Before: 100 tags took 3.4 s and 230 MiB of a PostgreSQL backend, 1,000 killed it,
    # and SQLite answered 500 ("Expression tree is too large") from 999.
    response = await client.get(path, params={"tag": [f"t{n}" for n in range(count)]})

    assert_422_naming(response, "query", "tag")
    assert len(response.content) < 2_000  # the 1,000 tags are not echoed back


async def test_the_cap_itself_is_accepted(client: httpx.AsyncClient, user: Account) -> None:
    tags = [f"t{n}" for n in range(MAX_TAGS)]
    await client.post("/items", json={"name": "x", "price": 1, "tags": tags}, headers=user.headers)
    await client.post(
        "/items", json={"name": "y", "price": 1, "tags": tags[1:]}, headers=user.headers
    )

    response = await client.get("/items", params={"tag": tags})

    assert response.status_code == 200
    assert [item["name"] for item in response.json()] == ["x"]


async def test_the_cap_is_a_setting(settings: Settings, database: Database) -> None:
    app = create_app(settings.model_copy(update={"max_tag_filters": 2}), database)
    async with asgi_client(app) as client:
        two = await client.get("/items", params={"tag": ["a", "b"]})
        three = await client.get("/items", params={"tag": ["a", "b", "c"]})

    assert two.status_code == 200
    assert_422_naming(three, "query", "tag")
    assert "at most 2" in three.text


def test_statement_shapes_are_bounded() -> None:
    # Compiled statements are cached per request shape, in bounded caches.
    for cached in (item_listing._page_query, item_listing._count_query):
        maxsize = cached.cache_info().maxsize
        assert maxsize is not None
        assert maxsize <= 512


# --- other open-ended inputs -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_more_tags_per_item_than_the_cap_are_422(
    client: httpx.AsyncClient, user: Account, method: str
) -> None:
    created = await client.post("/items", json={"name": "x", "price": 1}, headers=user.headers)
    url = "/items" if method == "POST" else f"/items/{created.json()['id']}"
    body = {"name": "x", "price": 1, "tags": [f"t{n}" for n in range(MAX_TAGS_PER_ITEM + 1)]}

    response = await client.request(method, url, json=body, headers=user.headers)

    assert_422_naming(response, "body", "tags")


@pytest.mark.parametrize("path", LIST_PATHS)
async def test_a_long_q_is_422(client: httpx.AsyncClient, path: str) -> None:
    assert_422_naming(await client.get(path, params={"q": "x" * 201}), "query", "q")


@pytest.mark.parametrize("path", LIST_PATHS)
async def test_an_oversized_cursor_is_422_before_it_is_decoded(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, params={"cursor": "a" * (MAX_CURSOR_LENGTH + 1)})

    assert_422_naming(response, "query", "cursor")
    assert len(response.content) < 1_000


# What each path answers to 50 unknown parameters: the cap is not reached, so its own
# answer (401: /users/me without credentials).
@pytest.mark.parametrize(
    ("path", "status"), [("/items", 200), ("/health", 200), ("/users/me", 401), ("/tags", 200)]
)
async def test_too_many_query_parameters_are_422(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    many = "&".join(f"p{n}=1" for n in range(51))
    fifty = "&".join(f"p{n}=1" for n in range(50))

    refused = await client.get(f"{path}?{many}")
    repeated = await client.get(f"{path}?{many}&{'&'.join(['x=1'] * 10)}")
    accepted = await client.get(f"{path}?{fifty}")

    assert_422_naming(refused, "query")
    assert_422_naming(repeated, "query", "x")  # the parameter to fix
    assert accepted.status_code == status, accepted.text


@pytest.mark.parametrize("path", ["/items", "/health"])
async def test_a_query_string_past_the_limit_is_414(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(f"{path}?q={'x' * 16 * 1024}")

    assert response.status_code == 414
    assert response.json()["detail"].startswith("Query string too long")
    assert "X-Request-ID" in response.headers


async def test_the_longest_legitimate_list_query_fits(client: httpx.AsyncClient) -> None:
    # 10 tags of 50 four-byte characters, a 200-character q, the longest cursor: all
    # percent-encoded, under the query-string limit (the cursor is refused for its
    # content, not for its size).
    params: dict[str, Any] = {
        "tag": ["𝄞" * 50] * MAX_TAGS,
        "q": "\U0001d400" * 200,  # a 4-byte letter (q needs a 3-letter word)
        "cursor": "a" * MAX_CURSOR_LENGTH,
        "sort": "-updated_at,name,price,created_at",
        "min_price": "0.01",
        "max_price": "9999999999.99",
        "created_after": "2000-01-01T00:00:00+00:00",
        "created_before": "2100-01-01T00:00:00+00:00",
        "owner_id": 1,
        "is_active": "true",
        "limit": 100,
        "count": "true",
    }
    response = await client.get("/items", params=params)

    assert len(str(response.request.url.query)) > 10_000
    assert_422_naming(response, "query", "cursor")  # not 414


# --- request bodies -----------------------------------------------------------------------------

LIMIT = 1024 * 1024


async def test_a_body_over_the_limit_is_413_from_its_content_length(
    client: httpx.AsyncClient, fetch: Any
) -> None:
    # Before: a 100 MB anonymous POST /users cost +400 MiB and returned a 300 MiB 422.
    body = b'{"email": "a@example.com", "password": "' + b"x" * LIMIT + b'"}'

    response = await client.post(
        "/users", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["detail"] == f"Request body too large (at most {LIMIT} bytes)"
    assert response.headers["connection"] == "close"
    assert await fetch("SELECT id FROM users") == []


async def test_a_body_at_the_limit_is_parsed(client: httpx.AsyncClient) -> None:
    prefix = b'{"email": "a@example.com", "password": "'
    body = prefix + b"x" * (LIMIT - len(prefix) - 2) + b'"}'
    assert len(body) == LIMIT

    response = await client.post(
        "/users", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422  # parsed: the password is too long
    assert len(response.content) < 2_000


async def test_a_chunked_body_over_the_limit_is_413_without_reading_the_rest(
    client: httpx.AsyncClient, fetch: Any
) -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "a@example.com", "password": "'
        for _ in range(64):  # 64 x 64 KiB = 4 MiB offered, no Content-Length
            sent.append(1)
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/users", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert len(sent) < 64  # reading stopped at the limit
    assert await fetch("SELECT id FROM users") == []


async def test_a_form_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/token", data={"username": "a@example.com", "password": "x" * (LIMIT + 1)}
    )
    assert response.status_code == 413


# --- 422 bodies are bounded ------------------------------------------------------------------


async def test_a_422_cuts_echoed_input_short(client: httpx.AsyncClient) -> None:
    huge = "x" * 500_000
    response = await client.post("/users", json={"email": huge, "password": "password123"})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "email"]
    assert len(error["input"]) <= MAX_ECHOED_CHARACTERS + 3
    assert len(response.content) < 2_000


async def test_a_422_does_not_echo_a_whole_body(client: httpx.AsyncClient) -> None:
    # A missing field's error carries the whole body as its input.
    response = await client.post("/users", json={"password": "p" * 100_000})

    assert response.status_code == 422
    assert len(response.content) < 2_000


async def test_a_422_does_not_grow_with_unknown_fields(
    client: httpx.AsyncClient, user: Account
) -> None:
    few = {f"f{n}": n for n in range(30)}
    many = {f"f{n}": n for n in range(50_000)}  # about 700 kB, under the body limit

    small = await client.post("/tags", json={"name": "x"} | few, headers=user.headers)
    large = await client.post("/tags", json={"name": "x"} | many, headers=user.headers)

    assert small.status_code == large.status_code == 422
    assert len(large.json()["detail"]) == MAX_LISTED_ERRORS + 1
    assert large.json()["detail"][-1]["type"] == "too_many_errors"
    assert len(large.content) < 2 * len(small.content)


async def test_a_huge_integer_is_echoed_as_its_size(client: httpx.AsyncClient) -> None:
    body = b'{"password": "password123", "email": ' + b"9" * 4000 + b"}"
    response = await client.post(
        "/users", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert len(response.content) < 2_000


# --- the largest request the caps allow -------------------------------------------------------

postgresql_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
LARGEST: dict[str, Any] = {
    "tag": [f"tag{n}" for n in range(MAX_TAGS)],
    "q": "aaa",
    "owner_id": 1,
    "is_active": "true",
    "min_price": "0.01",
    "max_price": "9999999999.99",
    "created_after": "2000-01-01T00:00:00Z",
    "created_before": "2100-01-01T00:00:00Z",
    "sort": "-updated_at,name,price,created_at",
    "limit": 100,
    "count": "true",
}


@postgresql_only
async def test_the_largest_list_request_keeps_a_backend_small(
    settings: Settings, make_user: Any
) -> None:
    # One pooled connection, so every request and the measurement share one backend.
    # Repeated past PostgreSQL's five custom plans, so the generic plan is cached too.
    owner = await make_user()
    tags = LARGEST["tag"]
    database = Database.from_settings(settings.model_copy(update={"db_pool_size": 1}))
    try:
        async with asgi_client(create_app(settings, database)) as client:
            for n in range(3):
                body = {"name": f"aaa{n}", "price": 1, "tags": tags}
                await client.post("/items", json=body, headers=owner.headers)
            for _ in range(8):
                response = await client.get("/items", params=LARGEST | {"owner_id": owner.id})
                assert response.status_code == 200, response.text
                assert len(response.json()) == 3
        pooled = await database.engine.raw_connection()
        try:
            driver: Any = pooled.driver_connection
            used = await driver.fetchval("SELECT sum(total_bytes) FROM pg_backend_memory_contexts")
        finally:
            pooled.close()
    finally:
        await database.dispose()
    # Measured about 3 MiB; 100 tags (refused now) took 230 MiB of a backend.
    assert used < 32 * 1024 * 1024, used
