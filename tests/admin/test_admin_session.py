"""ADMIN_SESSION_MINUTES: the server itself refuses a session older than that.

The cookie's max-age only asks the browser to forget it; a copy of the cookie must be
refused by the server too. Time is advanced by moving the session signer's clock (no
sleeping): the cookie keeps the moment it was signed.
"""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import TimestampSigner

from catalog.admin import SESSION_COOKIE
from catalog.api.app import create_app
from catalog.db.database import Database
from tests.admin.conftest import Admin
from tests.conftest import Account, make_settings

MINUTES = 5


@pytest.fixture
async def short_sessions(database_url: str, database: Database) -> FastAPI:
    return create_app(
        make_settings(database_url, admin=True, admin_session_minutes=MINUTES), database
    )


def advance_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The session signer's clock, `seconds` from now."""
    later = int(time.time() + seconds)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)


@pytest.mark.parametrize(
    ("elapsed", "signed_in"),
    [(MINUTES * 60 - 30, True), (MINUTES * 60 + 30, False)],
)
async def test_a_session_older_than_admin_session_minutes_is_refused(
    short_sessions: FastAPI,
    superuser: Account,
    monkeypatch: pytest.MonkeyPatch,
    elapsed: int,
    signed_in: bool,
) -> None:
    transport = httpx.ASGITransport(app=short_sessions, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        admin = Admin(client)
        assert (await admin.sign_in(superuser.email, superuser.password)).status_code == 302
        assert (await client.get("/admin/user/list")).status_code == 200
        assert client.cookies.get(SESSION_COOKIE)
        advance_clock(monkeypatch, elapsed)
        # The same cookie (the client's jar runs on the real clock and keeps it), as a
        # copy kept past its max-age would be sent.
        response = await client.get("/admin/user/list")
    if signed_in:
        assert response.status_code == 200
    else:
        assert response.status_code == 302
        assert response.headers["location"].endswith("/admin/login")
