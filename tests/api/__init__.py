"""HTTP tests of the API contract (issue 2, section 5), run on SQLite and PostgreSQL.

Shared typing aliases for the conftest fixtures, which are declared as returning `Any`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from catalog.db.database import Database
from catalog.models import LoginFailure
from tests.conftest import MakeUser

__all__ = ["ITEM_FIELDS", "Fetch", "MakeUser", "asgi_client", "bearer", "login"]

Fetch = Callable[..., Awaitable[list[Any]]]
# The fields of an Item in every response, exactly.
ITEM_FIELDS = {
    "id",
    "name",
    "description",
    "price",
    "is_active",
    "created_at",
    "updated_at",
    "owner_id",
    "tags",
}


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    """POST /auth/token the way an OAuth2 client does (form-encoded)."""
    return await client.post("/auth/token", data={"username": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying `token`."""
    return {"Authorization": f"Bearer {token}"}


def asgi_client(
    app: FastAPI, host: str = "test", address: tuple[str, int] = ("127.0.0.1", 123)
) -> httpx.AsyncClient:
    """An HTTP client for `app` in-process, as if from `address` to `http://host`."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=address)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


async def age_login_failures(database: Database, seconds: float) -> None:
    """Move every recorded login failure `seconds` into the past (time passing, without
    sleeping). Row by row: SQLite has no timestamp arithmetic to do it in one UPDATE."""
    async with database.transaction() as session:
        rows = (await session.execute(select(LoginFailure.key, LoginFailure.last_failure_at))).all()
        for key, last in rows:
            await session.execute(
                update(LoginFailure)
                .where(LoginFailure.key == key)
                .values(last_failure_at=last - timedelta(seconds=seconds))
            )
