"""MAX_QUERY_STRING_BYTES, MAX_BODY_BYTES and MAX_QUERY_PARAMS at non-default values, over HTTP.

tests/api/test_limits.py covers the answers at the defaults; here each limit is set low, so
a request just past it is refused and one at it passes, which the default would not do.
"""

from __future__ import annotations

from typing import Any

import httpx

from catalog.api.app import create_app
from catalog.db.database import Database
from tests.api import asgi_client
from tests.conftest import make_settings


def limited_client(database_url: str, database: Database, **limits: Any) -> httpx.AsyncClient:
    """A client for an app of its own with the given limit settings."""
    return asgi_client(create_app(make_settings(database_url, **limits), database))


async def test_a_query_string_one_byte_over_the_configured_limit_is_414(
    database_url: str, database: Database
) -> None:
    at_limit = "pad=" + "x" * (1024 - len("pad="))  # an unknown parameter: ignored
    async with limited_client(database_url, database, max_query_string_bytes=1024) as client:
        accepted = await client.get(f"/items?{at_limit}")
        refused = await client.get(f"/items?{at_limit}x")

    assert len(accepted.request.url.query) == 1024
    assert accepted.status_code == 200, accepted.text
    assert refused.status_code == 414  # the default (16384) would let 1025 bytes through
    assert refused.json() == {"detail": "Query string too long (at most 1024 bytes)"}


async def test_a_body_one_byte_over_the_configured_limit_is_413(
    database_url: str, database: Database
) -> None:
    prefix = b'{"email": "a@example.com", "password": "'
    at_limit = prefix + b"x" * (2048 - len(prefix) - 2) + b'"}'
    over = at_limit[:-2] + b'x"}'
    json = {"Content-Type": "application/json"}
    async with limited_client(database_url, database, max_body_bytes=2048) as client:
        accepted = await client.post("/users", content=at_limit, headers=json)
        refused = await client.post("/users", content=over, headers=json)

    assert (len(at_limit), len(over)) == (2048, 2049)
    assert accepted.status_code == 422  # parsed: the password is too long
    assert refused.status_code == 413  # the default (1 MiB) would parse it too
    assert refused.json() == {"detail": "Request body too large (at most 2048 bytes)"}


async def test_one_query_parameter_over_the_configured_limit_is_422(
    database_url: str, database: Database
) -> None:
    ten = "&".join(f"p{n}=1" for n in range(10))
    async with limited_client(database_url, database, max_query_params=10) as client:
        accepted = await client.get(f"/items?{ten}")
        refused = await client.get(f"/items?{ten}&p10=1")

    assert accepted.status_code == 200, accepted.text
    assert refused.status_code == 422  # the default (50) would let 11 through
    [issue] = refused.json()["detail"]
    assert issue["loc"][0] == "query"
    assert "at most 10" in issue["msg"]
