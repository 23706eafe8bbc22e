"""A mounted app's bare path redirects into the mount (`/admin` -> `/admin/`), as Starlette's
mounts do by default, with a relative `Location` (never built from the `Host` header)."""

from __future__ import annotations

from urllib.parse import urljoin

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount

from tests.admin.conftest import Admin
from tests.api import asgi_client


def _mount_paths(app: FastAPI) -> list[str]:
    return [route.path for route in app.routes if isinstance(route, Mount)]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_every_mount_redirects_its_bare_path(admin_app: FastAPI, method: str) -> None:
    mounts = _mount_paths(admin_app)
    assert "/admin" in mounts
    async with asgi_client(admin_app, host="evil.example") as spoofed:
        for path in mounts:
            response = await spoofed.request(method, f"{path}?next=x")

            assert response.status_code == 307, path
            location = response.headers["location"]
            assert "evil" not in location
            assert urljoin(f"https://api.example.com/prefix{path}", location) == (
                f"https://api.example.com/prefix{path}/?next=x"
            )


async def test_get_admin_leads_to_the_login_page(admin: Admin) -> None:
    response = await admin.client.get("/admin", follow_redirects=True)

    assert response.status_code == 200
    assert response.url.path == "/admin/login"
    assert [r.status_code for r in response.history] == [307, 302]


async def test_api_paths_keep_one_spelling(admin_http: httpx.AsyncClient) -> None:
    response = await admin_http.get("/items/")
    assert response.status_code == 404
    assert "location" not in response.headers
