"""The /users endpoints: registration, the caller's own account, and administration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.api import Fetch, MakeUser, login
from tests.conftest import Account

USER_FIELDS = {"id", "email", "full_name", "is_active", "is_superuser", "created_at"}
# Ids that can match no row: zero, negative, and beyond a 32-bit INTEGER column.
MISSING_IDS = [0, -1, 99999999999, 2**31]
NOT_INTEGERS = ["abc", "1.5", "1e3"]


async def _user_count(fetch: Fetch) -> int:
    [(count,)] = await fetch("SELECT count(*) FROM users")
    return int(count)


async def _user_row(fetch: Fetch, user_id: int) -> Any:
    rows = await fetch(
        "SELECT email, hashed_password, full_name, is_active, is_superuser"
        " FROM users WHERE id = :id",
        id=user_id,
    )
    return rows[0] if rows else None


# --- POST /users ---------------------------------------------------------------------


async def test_register_returns_201_and_the_user(client: httpx.AsyncClient, fetch: Fetch) -> None:
    response = await client.post(
        "/users",
        json={"email": "new@example.com", "password": "password123", "full_name": "New Person"},
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["email"] == "new@example.com"
    assert body["full_name"] == "New Person"
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    row = await _user_row(fetch, body["id"])
    assert row.email == "new@example.com"
    assert row.full_name == "New Person"
    assert row.hashed_password.startswith("$argon2")
    assert "password123" not in row.hashed_password


async def test_register_never_returns_the_password_or_its_hash(
    client: httpx.AsyncClient, fetch: Fetch
) -> None:
    response = await client.post("/users", json={"email": "a@example.com", "password": "s3cret-pw"})

    row = await _user_row(fetch, response.json()["id"])
    assert "s3cret-pw" not in response.text
    assert row.hashed_password not in response.text
    assert "password" not in response.text


async def test_register_without_full_name_stores_null(
    client: httpx.AsyncClient, fetch: Fetch
) -> None:
    response = await client.post("/users", json={"email": "a@example.com", "password": "x" * 8})

    assert response.status_code == 201
    assert response.json()["full_name"] is None
    assert (await _user_row(fetch, response.json()["id"])).full_name is None


async def test_register_lower_cases_the_email(client: httpx.AsyncClient, fetch: Fetch) -> None:
    response = await client.post(
        "/users", json={"email": "Mixed.Case@Example.COM", "password": "password123"}
    )

    assert response.status_code == 201
    assert response.json()["email"] == "mixed.case@example.com"
    assert (await _user_row(fetch, response.json()["id"])).email == "mixed.case@example.com"


@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@Example.com"])
async def test_register_a_taken_email_is_409(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, email: str
) -> None:
    response = await client.post("/users", json={"email": email, "password": "password123"})

    assert response.status_code == 409
    assert isinstance(response.json()["detail"], str)
    assert await fetch("SELECT id FROM users WHERE lower(email) = 'alice@example.com'") == [
        (user.id,)
    ]
    # The existing account is untouched: its password still works.
    assert (await login(client, user.email, user.password)).status_code == 200


@pytest.mark.parametrize("password", ["x" * 8, "x" * 128], ids=["8-chars", "128-chars"])
async def test_register_accepts_passwords_at_the_length_bounds(
    client: httpx.AsyncClient, password: str
) -> None:
    response = await client.post("/users", json={"email": "a@example.com", "password": password})

    assert response.status_code == 201
    assert (await login(client, "a@example.com", password)).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "a@example.com", "password": "x" * 7},
        {"email": "a@example.com", "password": "x" * 129},
        {"email": "not-an-email", "password": "password123"},
        {"email": "a@", "password": "password123"},
        {"email": "a@example.com"},
        {"password": "password123"},
        {"email": "a@example.com", "password": "password123", "is_superuser": True},
        {"email": "a@example.com", "password": "password123", "nickname": "a"},
        {"email": "a@example.com", "password": "password123", "full_name": "x" * 256},
        {"email": "a@example.com", "password": 12345678},
    ],
    ids=[
        "password-7",
        "password-129",
        "bad-email",
        "truncated-email",
        "no-password",
        "no-email",
        "unknown-field-is_superuser",
        "unknown-field",
        "full-name-too-long",
        "password-not-a-string",
    ],
)
async def test_register_invalid_is_422_and_stores_nothing(
    client: httpx.AsyncClient, fetch: Fetch, payload: dict[str, Any]
) -> None:
    response = await client.post("/users", json=payload)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)  # FastAPI's validation list
    assert await _user_count(fetch) == 0


async def test_register_rejects_a_non_json_body(client: httpx.AsyncClient, fetch: Fetch) -> None:
    response = await client.post(
        "/users", content=b"email=a@example.com", headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 422
    assert await _user_count(fetch) == 0


# --- GET /users/me -------------------------------------------------------------------


async def test_read_me(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    account = await make_user("me@example.com", full_name="Me Myself")

    response = await client.get("/users/me", headers=account.headers)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["id"] == account.id
    assert body["email"] == "me@example.com"
    assert body["full_name"] == "Me Myself"


async def test_read_me_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


# --- PATCH /users/me -----------------------------------------------------------------


async def test_update_me_full_name(client: httpx.AsyncClient, fetch: Fetch, user: Account) -> None:
    response = await client.patch("/users/me", json={"full_name": "Alice A."}, headers=user.headers)

    assert response.status_code == 200
    assert response.json()["full_name"] == "Alice A."
    assert response.json()["email"] == user.email
    assert (await _user_row(fetch, user.id)).full_name == "Alice A."


async def test_update_me_full_name_to_null(
    client: httpx.AsyncClient, fetch: Fetch, make_user: MakeUser
) -> None:
    account = await make_user(full_name="Someone")

    response = await client.patch("/users/me", json={"full_name": None}, headers=account.headers)

    assert response.status_code == 200
    assert response.json()["full_name"] is None
    assert (await _user_row(fetch, account.id)).full_name is None


async def test_update_me_empty_body_changes_nothing(
    client: httpx.AsyncClient, fetch: Fetch, make_user: MakeUser
) -> None:
    account = await make_user(full_name="Someone")
    before = await _user_row(fetch, account.id)

    response = await client.patch("/users/me", json={}, headers=account.headers)

    assert response.status_code == 200
    assert await _user_row(fetch, account.id) == before


async def test_update_me_password_replaces_the_old_one(
    client: httpx.AsyncClient, fetch: Fetch, user: Account
) -> None:
    old_hash = (await _user_row(fetch, user.id)).hashed_password

    response = await client.patch(
        "/users/me",
        json={"password": "brand-new-pass", "current_password": user.password},
        headers=user.headers,
    )

    assert response.status_code == 200
    assert "brand-new-pass" not in response.text
    assert (await _user_row(fetch, user.id)).hashed_password != old_hash
    assert (await login(client, user.email, user.password)).status_code == 401
    assert (await login(client, user.email, "brand-new-pass")).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        {"password": None},
        {"password": "short"},
        {"password": "x" * 129},
        {"email": "new@example.com"},
        {"is_superuser": True},
        {"is_active": False},
        {"full_name": "x" * 256},
    ],
    ids=[
        "null-password",
        "short-password",
        "long-password",
        "email-not-changeable",
        "cannot-self-promote",
        "cannot-self-deactivate",
        "full-name-too-long",
    ],
)
async def test_update_me_invalid_is_422_and_changes_nothing(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, payload: dict[str, Any]
) -> None:
    before = await _user_row(fetch, user.id)

    response = await client.patch("/users/me", json=payload, headers=user.headers)

    assert response.status_code == 422
    assert await _user_row(fetch, user.id) == before
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_update_me_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.patch("/users/me", json={"full_name": "x"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


# --- GET /users ----------------------------------------------------------------------


async def test_list_users_is_ordered_by_id(
    client: httpx.AsyncClient, make_user: MakeUser, superuser: Account
) -> None:
    # Created in an order that differs from the alphabetical one.
    accounts = [await make_user(f"{name}@example.com") for name in ("zed", "amy", "mia")]

    response = await client.get("/users", headers=superuser.headers)

    assert response.status_code == 200
    body = response.json()
    assert [u["id"] for u in body] == sorted([superuser.id, *(a.id for a in accounts)])
    assert all(set(u) == USER_FIELDS for u in body)
    assert [u["email"] for u in body[1:]] == [
        "zed@example.com",
        "amy@example.com",
        "mia@example.com",
    ]


async def test_list_users_skip_and_limit(
    client: httpx.AsyncClient, make_user: MakeUser, superuser: Account
) -> None:
    ids = [superuser.id] + [(await make_user()).id for _ in range(4)]

    page = await client.get("/users", params={"skip": 1, "limit": 2}, headers=superuser.headers)
    beyond = await client.get("/users", params={"skip": 10}, headers=superuser.headers)
    max_limit = await client.get("/users", params={"limit": 100}, headers=superuser.headers)

    assert page.status_code == 200
    assert [u["id"] for u in page.json()] == ids[1:3]
    assert beyond.json() == []
    assert [u["id"] for u in max_limit.json()] == ids


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": -1}, {"skip": -1}, {"limit": "ten"}],
    ids=["limit-0", "limit-101", "limit-negative", "skip-negative", "limit-not-int"],
)
async def test_list_users_page_bounds_are_422(
    client: httpx.AsyncClient, superuser: Account, params: dict[str, Any]
) -> None:
    response = await client.get("/users", params=params, headers=superuser.headers)

    assert response.status_code == 422


async def test_list_users_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/users")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_list_users_as_a_regular_user_is_403(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await client.get("/users", headers=user.headers)

    assert response.status_code == 403
    assert isinstance(response.json()["detail"], str)


# --- GET /users/{id} -----------------------------------------------------------------


async def test_read_self_by_id(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.get(f"/users/{user.id}", headers=user.headers)

    assert response.status_code == 200
    assert set(response.json()) == USER_FIELDS
    assert response.json()["id"] == user.id


async def test_read_another_user_is_403(
    client: httpx.AsyncClient, user: Account, other_user: Account
) -> None:
    response = await client.get(f"/users/{other_user.id}", headers=user.headers)

    assert response.status_code == 403


@pytest.mark.parametrize("missing", [*MISSING_IDS, "next"])
async def test_read_a_missing_user_as_a_regular_user_is_403_too(
    client: httpx.AsyncClient, user: Account, missing: int | str
) -> None:
    # Same answer as for an existing user: a regular user cannot probe which ids exist.
    user_id = user.id + 1000 if missing == "next" else missing

    response = await client.get(f"/users/{user_id}", headers=user.headers)

    assert response.status_code == 403


async def test_superuser_reads_any_user(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    response = await client.get(f"/users/{user.id}", headers=superuser.headers)

    assert response.status_code == 200
    assert response.json()["id"] == user.id
    assert response.json()["email"] == user.email


@pytest.mark.parametrize("missing", [*MISSING_IDS, "next"])
async def test_superuser_reading_a_missing_user_gets_404(
    client: httpx.AsyncClient, superuser: Account, missing: int | str
) -> None:
    user_id = superuser.id + 1000 if missing == "next" else missing

    response = await client.get(f"/users/{user_id}", headers=superuser.headers)

    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}


@pytest.mark.parametrize("user_id", NOT_INTEGERS)
async def test_read_user_with_a_non_integer_id_is_422(
    client: httpx.AsyncClient, superuser: Account, user_id: str
) -> None:
    response = await client.get(f"/users/{user_id}", headers=superuser.headers)

    assert response.status_code == 422


async def test_read_user_without_token_is_401(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.get(f"/users/{user.id}")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


# --- PATCH /users/{id} ---------------------------------------------------------------


async def test_superuser_updates_a_users_fields(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, superuser: Account
) -> None:
    response = await client.patch(
        f"/users/{user.id}",
        json={"full_name": "Renamed", "is_active": False, "is_superuser": True},
        headers=superuser.headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_FIELDS
    assert (body["full_name"], body["is_active"], body["is_superuser"]) == ("Renamed", False, True)
    row = await _user_row(fetch, user.id)
    assert (row.full_name, row.is_active, row.is_superuser) == ("Renamed", False, True)
    assert row.email == user.email


async def test_superuser_update_changes_only_the_given_fields(
    client: httpx.AsyncClient, fetch: Fetch, make_user: MakeUser, superuser: Account
) -> None:
    account = await make_user(full_name="Keep Me")

    response = await client.patch(
        f"/users/{account.id}", json={"is_superuser": True}, headers=superuser.headers
    )

    assert response.status_code == 200
    row = await _user_row(fetch, account.id)
    assert (row.full_name, row.is_active, row.is_superuser) == ("Keep Me", True, True)


async def test_a_promoted_user_can_administer(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    assert (await client.get("/users", headers=user.headers)).status_code == 403

    await client.patch(f"/users/{user.id}", json={"is_superuser": True}, headers=superuser.headers)

    assert (await client.get("/users", headers=user.headers)).status_code == 200


async def test_a_deactivated_user_cannot_log_in_or_write(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, superuser: Account
) -> None:
    response = await client.patch(
        f"/users/{user.id}", json={"is_active": False}, headers=superuser.headers
    )
    assert response.status_code == 200

    assert (await login(client, user.email, user.password)).status_code == 403
    # The token issued before the deactivation no longer lets them write.
    item = await client.post("/items", json={"name": "x", "price": 1}, headers=user.headers)
    tag = await client.post("/tags", json={"name": "x"}, headers=user.headers)
    me = await client.patch("/users/me", json={"full_name": "x"}, headers=user.headers)
    assert (item.status_code, tag.status_code, me.status_code) == (403, 403, 403)
    assert await fetch("SELECT id FROM items") == []
    assert await fetch("SELECT id FROM tags") == []
    assert (await _user_row(fetch, user.id)).full_name is None


async def test_a_reactivated_user_can_log_in_again(
    client: httpx.AsyncClient, make_user: MakeUser, superuser: Account
) -> None:
    account = await make_user(is_active=False)

    response = await client.patch(
        f"/users/{account.id}", json={"is_active": True}, headers=superuser.headers
    )

    assert response.status_code == 200
    assert (await login(client, account.email, account.password)).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "x@example.com"},
        {"password": "password123"},
        {"is_active": None},
        {"is_superuser": None},
        {"is_active": "maybe"},
        {"full_name": "x" * 256},
    ],
    ids=[
        "email-not-changeable",
        "password-not-settable",
        "null-is_active",
        "null-is_superuser",
        "is_active-not-bool",
        "full-name-too-long",
    ],
)
async def test_superuser_update_invalid_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    fetch: Fetch,
    user: Account,
    superuser: Account,
    payload: dict[str, Any],
) -> None:
    before = await _user_row(fetch, user.id)

    response = await client.patch(f"/users/{user.id}", json=payload, headers=superuser.headers)

    assert response.status_code == 422
    assert await _user_row(fetch, user.id) == before


@pytest.mark.parametrize("user_id", NOT_INTEGERS)
async def test_update_user_with_a_non_integer_id_is_422(
    client: httpx.AsyncClient, superuser: Account, user_id: str
) -> None:
    response = await client.patch(
        f"/users/{user_id}", json={"full_name": "x"}, headers=superuser.headers
    )

    assert response.status_code == 422


@pytest.mark.parametrize("missing", [*MISSING_IDS, "next"])
async def test_update_a_missing_user_is_404(
    client: httpx.AsyncClient, superuser: Account, missing: int | str
) -> None:
    user_id = superuser.id + 1000 if missing == "next" else missing

    response = await client.patch(
        f"/users/{user_id}", json={"full_name": "x"}, headers=superuser.headers
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}


async def test_update_user_as_a_regular_user_is_403(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, other_user: Account
) -> None:
    before = await _user_row(fetch, other_user.id)

    response = await client.patch(
        f"/users/{other_user.id}", json={"is_active": False}, headers=user.headers
    )
    on_self = await client.patch(
        f"/users/{user.id}", json={"is_superuser": True}, headers=user.headers
    )

    assert (response.status_code, on_self.status_code) == (403, 403)
    assert await _user_row(fetch, other_user.id) == before
    assert not (await _user_row(fetch, user.id)).is_superuser


async def test_update_user_without_token_is_401(
    client: httpx.AsyncClient, fetch: Fetch, user: Account
) -> None:
    response = await client.patch(f"/users/{user.id}", json={"is_superuser": True})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert not (await _user_row(fetch, user.id)).is_superuser


# --- DELETE /users/{id} --------------------------------------------------------------


async def _create_item(
    client: httpx.AsyncClient, owner: Account, name: str, tags: list[str]
) -> int:
    response = await client.post(
        "/items", json={"name": name, "price": "9.99", "tags": tags}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    item_id: int = response.json()["id"]
    return item_id


async def test_delete_user_takes_their_items_and_item_tags_with_them(
    client: httpx.AsyncClient,
    fetch: Fetch,
    user: Account,
    other_user: Account,
    superuser: Account,
) -> None:
    await _create_item(client, user, "lamp", ["red", "home"])
    await _create_item(client, user, "chair", ["home"])
    kept = await _create_item(client, other_user, "desk", ["home"])

    response = await client.delete(f"/users/{user.id}", headers=superuser.headers)

    assert response.status_code == 204
    assert response.content == b""
    assert await fetch("SELECT id FROM users WHERE id = :id", id=user.id) == []
    assert await fetch("SELECT id FROM items WHERE owner_id = :id", id=user.id) == []
    assert await fetch("SELECT id FROM items") == [(kept,)]
    assert await fetch("SELECT item_id FROM item_tags") == [(kept,)]
    # Tags are shared vocabulary: they outlive the items that used them.
    assert sorted(r.name for r in await fetch("SELECT name FROM tags")) == ["home", "red"]
    assert (await client.get(f"/users/{user.id}/items")).status_code == 404


async def test_a_deleted_user_can_no_longer_log_in(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    await client.delete(f"/users/{user.id}", headers=superuser.headers)

    assert (await login(client, user.email, user.password)).status_code == 401


async def test_delete_user_as_a_regular_user_is_403(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, other_user: Account
) -> None:
    item_id = await _create_item(client, other_user, "desk", ["home"])

    response = await client.delete(f"/users/{other_user.id}", headers=user.headers)

    assert response.status_code == 403
    assert await fetch("SELECT id FROM users WHERE id = :id", id=other_user.id) == [
        (other_user.id,)
    ]
    assert await fetch("SELECT id FROM items") == [(item_id,)]


async def test_delete_user_without_token_is_401(
    client: httpx.AsyncClient, fetch: Fetch, user: Account
) -> None:
    response = await client.delete(f"/users/{user.id}")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await fetch("SELECT id FROM users WHERE id = :id", id=user.id) == [(user.id,)]


@pytest.mark.parametrize("missing", [*MISSING_IDS, "next"])
async def test_delete_a_missing_user_is_404(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, superuser: Account, missing: int | str
) -> None:
    user_id = superuser.id + 1000 if missing == "next" else missing

    response = await client.delete(f"/users/{user_id}", headers=superuser.headers)

    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}
    assert await _user_count(fetch) == 2


async def test_delete_the_same_user_twice_is_404_the_second_time(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    first = await client.delete(f"/users/{user.id}", headers=superuser.headers)
    second = await client.delete(f"/users/{user.id}", headers=superuser.headers)

    assert (first.status_code, second.status_code) == (204, 404)


@pytest.mark.parametrize("user_id", NOT_INTEGERS)
async def test_delete_user_with_a_non_integer_id_is_422(
    client: httpx.AsyncClient, superuser: Account, user_id: str
) -> None:
    response = await client.delete(f"/users/{user_id}", headers=superuser.headers)

    assert response.status_code == 422


async def test_token_of_a_deleted_user_does_not_authenticate_the_next_registrant(
    client: httpx.AsyncClient, superuser: Account, make_user: MakeUser
) -> None:
    # Tokens name the user id: an id handed out twice (SQLite without AUTOINCREMENT
    # reuses max(id)+1) would let a deleted user's token act as the newcomer.
    victim = await make_user("victim@example.com")  # the highest id
    deleted = await client.delete(f"/users/{victim.id}", headers=superuser.headers)
    assert deleted.status_code == 204
    registered = await client.post(
        "/users", json={"email": "newcomer@example.com", "password": "password123"}
    )
    assert registered.status_code == 201
    assert registered.json()["id"] != victim.id

    response = await client.get("/users/me", headers=victim.headers)

    assert response.status_code == 401, response.json()
