"""Fixtures for the web admin: the app with `ADMIN=on`, and a client that signs in.

The admin app shares the suite's database (and its cleaning after each test), so every
test here runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from catalog.admin.middleware import CSRF_FIELD, CSRF_HEADER
from catalog.api.app import create_app
from catalog.db.database import Database
from tests.conftest import Account, make_settings

_META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def page_token(html: str) -> str:
    """The CSRF token a rendered admin page carries for its script."""
    found = _META_TOKEN.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


@dataclass
class Admin:
    """An HTTP client of the admin, which knows its session's current CSRF token."""

    client: httpx.AsyncClient
    token: str = ""

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET an admin page, remembering the token it carries."""
        response = await self.client.get(path, **kwargs)
        if "text/html" in response.headers.get("content-type", ""):
            found = _META_TOKEN.search(response.text)
            self.token = found.group(1) if found else self.token
        return response

    async def post_form(
        self, path: str, data: dict[str, Any], *, with_token: bool = True
    ) -> httpx.Response:
        """POST a form as the admin's pages do (the token as a field, unless told not to)."""
        if not self.token:
            await self.get("/admin/login")
        fields = {**data, CSRF_FIELD: self.token} if with_token else data
        return await self.client.post(path, data=fields)

    async def delete(self, path: str, *, with_token: bool = True) -> httpx.Response:
        """DELETE as sqladmin's script does (the token in the header, unless told not to)."""
        headers = {CSRF_HEADER: self.token} if with_token else {}
        return await self.client.delete(path, headers=headers)

    async def sign_in(self, email: str, password: str) -> httpx.Response:
        """Submit the login form; a success lands on the admin's index."""
        await self.get("/admin/login")
        response = await self.post_form("/admin/login", {"username": email, "password": password})
        if response.status_code == 302:
            await self.get("/admin/")  # the new session's token
        return response


@pytest.fixture(scope="session")
def admin_app(database_url: str, database: Database) -> FastAPI:
    """The API with the admin mounted (ADMIN=on), on the suite's database."""
    return create_app(make_settings(database_url, admin=True), database)


@pytest.fixture
async def admin_http(admin_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping HTTP client of the admin app (in-process)."""
    transport = httpx.ASGITransport(app=admin_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def admin(admin_http: httpx.AsyncClient) -> Admin:
    """A visitor of the admin, not signed in."""
    return Admin(admin_http)


@pytest.fixture
async def signed_in(admin: Admin, superuser: Account) -> Admin:
    """The admin, signed in as `superuser`."""
    response = await admin.sign_in(superuser.email, superuser.password)
    assert response.status_code == 302, response.text
    return admin
