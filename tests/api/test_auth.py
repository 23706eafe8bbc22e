"""POST /auth/token and the bearer tokens it issues.

Login is the OAuth2 password flow: form fields `username` (the email) and `password`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

import httpx
import jwt
import pytest

from catalog import security
from catalog.config import Settings
from catalog.security import create_access_token, credential_stamp
from tests.api import Fetch, MakeUser, bearer, login
from tests.api.test_outages import app_client
from tests.conftest import SECRET, Account

BAD_CREDENTIALS = {"detail": "Incorrect email or password"}


async def test_login_returns_a_bearer_token_for_users_me(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await login(client, user.email, user.password)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type"}
    assert body["token_type"] == "bearer"
    me = await client.get("/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user.id
    assert me.json()["email"] == user.email


async def test_login_matches_the_email_case_insensitively(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await login(client, user.email.upper(), user.password)

    assert response.status_code == 200
    me = await client.get("/users/me", headers=bearer(response.json()["access_token"]))
    assert me.json()["id"] == user.id


async def test_an_account_registered_in_mixed_case_logs_in_in_lower_case(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        "/users", json={"email": "Carol.Smith@Example.COM", "password": "password123"}
    )
    assert created.status_code == 201

    response = await login(client, "carol.smith@example.com", "password123")

    assert response.status_code == 200


async def test_wrong_password_is_401(client: httpx.AsyncClient, user: Account) -> None:
    response = await login(client, user.email, "not-the-password")

    assert response.status_code == 401
    assert response.json() == BAD_CREDENTIALS
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_unknown_email_is_401_and_indistinguishable_from_a_wrong_password(
    client: httpx.AsyncClient, user: Account
) -> None:
    unknown = await login(client, "nobody@example.com", user.password)
    wrong = await login(client, user.email, "not-the-password")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json() == BAD_CREDENTIALS
    assert unknown.headers["WWW-Authenticate"] == "Bearer"


async def test_inactive_user_with_the_right_password_is_403(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    account = await make_user("sleepy@example.com", is_active=False)

    response = await login(client, account.email, account.password)

    assert response.status_code == 403
    assert "access_token" not in response.json()


async def test_inactive_user_with_a_wrong_password_is_401(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    # Only someone who knows the password learns that the account is deactivated.
    account = await make_user("sleepy@example.com", is_active=False)

    response = await login(client, account.email, "not-the-password")

    assert response.status_code == 401


@pytest.mark.parametrize(
    "form",
    [{"username": "alice@example.com"}, {"password": "password123"}, {}],
    ids=["no-password", "no-username", "empty"],
)
async def test_login_with_missing_fields_is_422(
    client: httpx.AsyncClient, user: Account, form: dict[str, str]
) -> None:
    response = await client.post("/auth/token", data=form)

    assert response.status_code == 422


async def test_login_takes_a_form_not_json(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.post(
        "/auth/token", json={"username": user.email, "password": user.password}
    )

    assert response.status_code == 422


class _VerifySpy:
    """Wraps the argon2 hasher's verify (under PasswordHash.verify and verify_and_update),
    recording the hash each call checked against."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.hashes: list[str] = []

    def __call__(self, password: str, hashed: str) -> bool:
        self.hashes.append(hashed)
        return bool(self.real(password, hashed))


def _argon2_cost(hashed: str) -> list[str]:
    """The algorithm, version and cost fields of a PHC string: `$argon2id$v=19$m=..,t=..,p=..`."""
    return hashed.split("$")[1:4]


async def test_unknown_email_costs_the_same_hash_work_as_a_wrong_password(
    client: httpx.AsyncClient,
    user: Account,
    fetch: Fetch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not timed: the invariant is that both paths run one argon2 verification of
    # the same cost, which is what makes their timings alike.
    hasher = security._password_hash.current_hasher
    spy = _VerifySpy(hasher.verify)
    monkeypatch.setattr(hasher, "verify", spy)
    [(stored,)] = await fetch("SELECT hashed_password FROM users WHERE id = :id", id=user.id)

    assert (await login(client, "nobody@example.com", "some-password")).status_code == 401
    unknown_email = list(spy.hashes)
    spy.hashes.clear()
    assert (await login(client, user.email, "some-password")).status_code == 401
    wrong_password = list(spy.hashes)

    assert wrong_password == [stored]
    assert len(unknown_email) == 1
    assert unknown_email[0] != stored
    assert _argon2_cost(unknown_email[0]) == _argon2_cost(stored)


# --- bearer tokens on a protected endpoint ----------------------------------------------


def _token(claims: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(claims, key, algorithm=security.ALGORITHM)


FAR_FUTURE = 4102444800  # 2100-01-01: these tokens fail for another reason than expiry
BAD_HEADERS: dict[str, Callable[[int], dict[str, str]]] = {
    "none": lambda _: {},
    "empty-bearer": lambda _: {"Authorization": "Bearer"},
    "garbage": lambda _: bearer("not-a-jwt"),
    "basic-scheme": lambda _: {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQxMjM="},
    "foreign-key": lambda uid: bearer(
        _token({"sub": str(uid), "exp": FAR_FUTURE}, key="another-key-" + "y" * 32)
    ),
    "non-integer-sub": lambda _: bearer(_token({"sub": "alice", "exp": FAR_FUTURE})),
    "no-exp": lambda uid: bearer(_token({"sub": str(uid)})),
    "alg-none": lambda uid: bearer(
        jwt.encode({"sub": str(uid), "exp": FAR_FUTURE}, None, algorithm="none")
    ),
}


@pytest.mark.parametrize("make_headers", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
async def test_users_me_without_a_valid_token_is_401(
    client: httpx.AsyncClient, user: Account, make_headers: Callable[[int], dict[str, str]]
) -> None:
    response = await client.get("/users/me", headers=make_headers(user.id))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_expired_token_is_401_on_users_me(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, method: str
) -> None:
    [(hashed,)] = await fetch("SELECT hashed_password FROM users WHERE id = :id", id=user.id)
    # Right user, right password stamp: only the expiry is wrong.
    expired = create_access_token(user.id, SECRET, -1, stamp=credential_stamp(hashed, SECRET))

    response = await client.request(
        method, "/users/me", json={"full_name": "x"}, headers=bearer(expired)
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await fetch("SELECT full_name FROM users") == [(None,)]


async def test_a_bad_token_cannot_patch_users_me(
    client: httpx.AsyncClient, fetch: Fetch, user: Account
) -> None:
    response = await client.patch("/users/me", json={"full_name": "x"}, headers=bearer("not-a-jwt"))

    assert response.status_code == 401
    assert await fetch("SELECT full_name FROM users") == [(None,)]


async def test_token_of_a_deleted_user_is_401(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    assert (await client.delete(f"/users/{user.id}", headers=superuser.headers)).status_code == 204

    response = await client.get("/users/me", headers=user.headers)

    assert response.status_code == 401


async def test_a_password_change_revokes_earlier_tokens(
    client: httpx.AsyncClient, user: Account
) -> None:
    before = (await login(client, user.email, user.password)).json()["access_token"]
    changed = await client.patch(
        "/users/me",
        json={"password": "a-brand-new-password", "current_password": user.password},
        headers=bearer(before),
    )
    assert changed.status_code == 200

    # Tokens issued for the old password stop working, for reads and writes alike.
    assert (await client.get("/users/me", headers=bearer(before))).status_code == 401
    item = {"name": "lamp", "price": 1}
    assert (await client.post("/items", json=item, headers=bearer(before))).status_code == 401
    after = (await login(client, user.email, "a-brand-new-password")).json()["access_token"]
    assert (await client.get("/users/me", headers=bearer(after))).status_code == 200
    assert (await client.post("/items", json=item, headers=bearer(after))).status_code == 201


async def test_an_admin_update_keeps_the_users_tokens(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    renamed = await client.patch(
        f"/users/{user.id}", json={"full_name": "Alice"}, headers=superuser.headers
    )
    assert renamed.status_code == 200
    assert (await client.get("/users/me", headers=user.headers)).status_code == 200


@pytest.mark.parametrize("minutes", [7, 90])
async def test_issued_tokens_live_for_access_token_expire_minutes(
    settings: Settings, user: Account, minutes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACCESS_TOKEN_EXPIRE_MINUTES is the lifetime of the token /auth/token issues, and
    the server refuses it once that has passed (its clock moved, not slept)."""
    async with app_client(settings, access_token_expire_minutes=minutes) as (client, _):
        response = await login(client, user.email, user.password)
        assert response.status_code == 200
        token = response.json()["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == minutes * 60
        headers = bearer(token)
        assert (await client.get("/users/me", headers=headers)).status_code == 200
        _move_jwt_clock(monkeypatch, claims["exp"] + 1 - claims["iat"])
        expired = await client.get("/users/me", headers=headers)
        assert expired.status_code == 401


def _move_jwt_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """PyJWT's clock (it reads `datetime.now(tz=timezone.utc)` to check `exp`) and the one
    remembered tokens are checked against, moved."""
    monkeypatch.setattr(security, "token_clock", lambda: time.time() + seconds)

    class Later(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Later:
            moved = datetime.now(tz) + timedelta(seconds=seconds)
            return cls.fromtimestamp(moved.timestamp(), tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
