"""HTTP tests of the API contract (issue 2, section 5), run on SQLite and PostgreSQL.

Shared typing aliases for the conftest fixtures, which are declared as returning `Any`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.conftest import Account

MakeUser = Callable[..., Awaitable[Account]]
Fetch = Callable[..., Awaitable[list[Any]]]


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    """POST /auth/token the way an OAuth2 client does (form-encoded)."""
    return await client.post("/auth/token", data={"username": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying `token`."""
    return {"Authorization": f"Bearer {token}"}
