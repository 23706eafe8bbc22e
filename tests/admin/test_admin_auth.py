"""Who gets into the admin: superusers only, through the API's own login check.

The session cookie is signed, HttpOnly, SameSite=strict and scoped to /admin; it holds the
credential stamp, so a new password or a lost superuser flag ends the session.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request

from catalog.admin import SESSION_COOKIE, auth
from catalog.api.app import create_app
from catalog.db.database import Database
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import CatalogError
from catalog.services.users import Credentials
from tests.admin.conftest import Admin
from tests.conftest import Account, MakeUser, make_settings

PAGES = ["/admin/", "/admin/user/list", "/admin/item/list", "/admin/tag/list", "/admin/item/edit/1"]


@pytest.mark.parametrize("path", PAGES)
async def test_anonymous_visitors_are_sent_to_the_login_page(admin: Admin, path: str) -> None:
    response = await admin.get(path)
    assert response.status_code == 302
    assert response.headers["location"] == "/admin/login"


async def test_a_superuser_signs_in_with_email_and_password(
    admin: Admin, superuser: Account
) -> None:
    response = await admin.sign_in(superuser.email.upper(), superuser.password)
    assert response.status_code == 302
    assert response.headers["location"] == "/admin/"
    page = await admin.get("/admin/item/list")
    assert page.status_code == 200
    assert "Items" in page.text


async def test_a_normal_users_login_is_refused(admin: Admin, user: Account) -> None:
    response = await admin.sign_in(user.email, user.password)
    assert response.status_code == 403
    assert auth.NOT_A_SUPERUSER in response.text
    assert (await admin.get("/admin/user/list")).status_code == 302  # still not signed in


@pytest.mark.parametrize(
    ("email", "password"),
    [("root@example.com", "wrong-password"), ("nobody@example.com", "password123")],
)
async def test_wrong_credentials_are_refused_alike(
    admin: Admin, superuser: Account, email: str, password: str
) -> None:
    response = await admin.sign_in(email, password)
    assert response.status_code == 401
    assert "Incorrect email or password" in response.text
    assert (await admin.get("/admin/user/list")).status_code == 302


async def test_an_inactive_superuser_is_refused(admin: Admin, make_user: MakeUser) -> None:
    account = await make_user("off@example.com", is_superuser=True, is_active=False)
    response = await admin.sign_in(account.email, account.password)
    assert response.status_code == 403
    assert "Inactive user" in response.text


async def test_the_login_check_is_one_function(
    admin: Admin, superuser: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auth.check_credentials` is where the API's login throttle plugs in: what it raises
    is answered on the login page with its own status."""

    class TooManyAttempts(CatalogError):
        status_code = 429

    async def throttled(request: Request, uow: UnitOfWork, email: str, pw: str) -> Credentials:
        raise TooManyAttempts("Too many login attempts; try again later")

    monkeypatch.setattr(auth, "check_credentials", throttled)
    response = await admin.sign_in(superuser.email, superuser.password)
    assert response.status_code == 429
    assert "Too many login attempts" in response.text


async def test_the_session_cookie_is_signed_httponly_strict_and_scoped(
    admin: Admin, superuser: Account
) -> None:
    response = await admin.sign_in(superuser.email, superuser.password)
    cookie = response.headers["set-cookie"]
    name, _, attributes = cookie.partition(";")
    assert name.startswith(f"{SESSION_COOKIE}=")
    flags = {part.strip().lower() for part in attributes.split(";")}
    assert {"httponly", "samesite=strict", "path=/admin", "max-age=3600"} <= flags
    assert "secure" not in flags  # ENVIRONMENT=test, ADMIN_HTTPS_ONLY unset

    # A cookie whose signature does not match is no session at all.
    value = name.split("=", 1)[1]
    admin.client.cookies.set(SESSION_COOKIE, value[:-2] + "xx", path="/admin")
    assert (await admin.get("/admin/user/list")).status_code == 302


async def test_the_cookie_is_https_only_when_configured(
    database_url: str, database: Database, superuser: Account
) -> None:
    settings = make_settings(database_url, admin=True, admin_https_only=True)
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        response = await Admin(client).sign_in(superuser.email, superuser.password)
    assert response.status_code == 302
    assert "; secure" in response.headers["set-cookie"].lower()


async def test_a_new_password_ends_the_admin_session(
    signed_in: Admin, superuser: Account, admin_http: httpx.AsyncClient
) -> None:
    assert (await signed_in.get("/admin/user/list")).status_code == 200
    body = {"password": "another-password", "current_password": superuser.password}
    changed = await admin_http.patch("/users/me", json=body, headers=superuser.headers)
    assert changed.status_code == 200
    assert (await signed_in.get("/admin/user/list")).status_code == 302


async def test_losing_the_superuser_flag_ends_the_admin_session(
    signed_in: Admin, superuser: Account, make_user: MakeUser, admin_http: httpx.AsyncClient
) -> None:
    other = await make_user("boss@example.com", is_superuser=True)
    demoted = await admin_http.patch(
        f"/users/{superuser.id}", json={"is_superuser": False}, headers=other.headers
    )
    assert demoted.status_code == 200
    assert (await signed_in.get("/admin/user/list")).status_code == 302


async def test_logout_ends_the_session(signed_in: Admin) -> None:
    response = await signed_in.get("/admin/logout", params={"csrf_token": signed_in.token})
    assert response.status_code == 302
    assert response.headers["location"] == "/admin/login"
    assert (await signed_in.get("/admin/user/list")).status_code == 302


async def test_the_admin_is_not_mounted_unless_enabled(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admin/login")).status_code == 404
    assert (await client.get("/admin/statics/css/main.css")).status_code == 404
