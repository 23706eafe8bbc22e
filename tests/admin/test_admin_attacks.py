"""What an attacker found in the admin (issue 18, findings 1, 8, 9, 10): each failed before.

On SQLite and PostgreSQL, through HTTP, reading the database back.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from catalog.api.app import create_app
from catalog.db.database import Database
from catalog.services.users import SELF_DEMOTE
from tests.admin.conftest import Admin
from tests.api import Fetch
from tests.conftest import Account, make_settings

SECRET_BYTES = b"the-signing-key-that-must-never-leave"


# --- finding 1: no admin route reads a file ---------------------------------------------------


@pytest.mark.parametrize("kind", ["download", "preview"])
@pytest.mark.parametrize("name", [".secret_key", "catalog.db", "leak.txt"])
async def test_no_admin_route_serves_a_file_a_column_names(
    signed_in: Admin,
    user: Account,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    name: str,
) -> None:
    # Before: a user set their full_name to ".secret_key"; a superuser opening
    # /admin/user/<id>/full_name/download/ received the file from the working directory.
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_bytes(SECRET_BYTES)
    renamed = await signed_in.client.patch(
        "/users/me", json={"full_name": name}, headers=user.headers
    )
    assert renamed.status_code == 200

    response = await signed_in.get(f"/admin/user/{user.id}/full_name/{kind}/")

    assert response.status_code == 404
    assert SECRET_BYTES not in response.content


# --- finding 8: the admin applies the API's rules to the signed-in superuser ----------------


def _user_form(**fields: str) -> dict[str, str]:
    return {"full_name": "", "is_active": "y", "is_superuser": "y", "save": "Save"} | fields


@pytest.mark.parametrize("change", [{"is_superuser": ""}, {"is_active": ""}])
async def test_a_superuser_cannot_demote_themselves_in_the_admin(
    signed_in: Admin, superuser: Account, fetch: Fetch, change: dict[str, str]
) -> None:
    response = await signed_in.post_form(f"/admin/user/edit/{superuser.id}", _user_form(**change))
    assert response.status_code == 400, response.text  # refused, shown on the form
    assert SELF_DEMOTE in response.text
    rows = await fetch("SELECT is_active, is_superuser FROM users WHERE id = :id", id=superuser.id)
    assert [tuple(bool(v) for v in row) for row in rows] == [(True, True)]


async def test_a_superuser_cannot_delete_themselves_in_the_admin(
    signed_in: Admin, superuser: Account, fetch: Fetch
) -> None:
    response = await signed_in.delete(f"/admin/user/delete?pks={superuser.id}")
    assert "cannot+delete+their+own+account" in response.text  # the list page shows why
    assert await fetch("SELECT id FROM users WHERE id = :id", id=superuser.id) == [(superuser.id,)]


# --- finding 9: logout ends the session, copies of the cookie included ----------------------


async def test_a_cookie_saved_before_logout_is_refused_after_it(
    signed_in: Admin, admin_app: FastAPI
) -> None:
    saved = dict(signed_in.client.cookies)
    logout = await signed_in.get("/admin/logout", params={"csrf_token": signed_in.token})
    assert logout.status_code == 302

    transport = httpx.ASGITransport(app=admin_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", cookies=saved
    ) as replay:
        response = await replay.get("/admin/user/list")
    assert response.status_code == 302
    assert response.headers["location"] == "/admin/login"


# --- finding 10: redirects are never built from the Host header ------------------------------


async def test_admin_redirects_ignore_the_host_header(admin: Admin) -> None:
    response = await admin.client.get("/admin/", headers={"Host": "evil.example"})
    assert response.status_code == 302
    assert response.headers["location"] == "/admin/login"


async def test_admin_redirects_use_the_public_base_url(
    database_url: str, database: Database
) -> None:
    settings = make_settings(database_url, admin=True, public_base_url="https://public.example")
    transport = httpx.ASGITransport(app=create_app(settings, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as client:
        response = await client.get("/admin/")
    assert response.headers["location"] == "https://public.example/admin/login"
