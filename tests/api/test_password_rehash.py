"""A login re-hashes a password hashed with other argon2 parameters, and keeps every open
session of the account; setting a password still ends them. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update

from catalog import security
from catalog.db.database import Database
from catalog.models import User
from catalog.security import create_access_token, credential_stamp
from tests.api import bearer, login
from tests.conftest import SECRET, Account

# Not the parameters hash_password uses now (the suite's cheapest ones): "older" ones.
OLDER = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=2048),))


async def _stored(database: Database, user_id: int) -> Any:
    async with database.transaction() as session:
        query = select(User.hashed_password, User.stamp_basis).where(User.id == user_id)
        return (await session.execute(query)).one()


async def _with_older_hash(database: Database, user: Account) -> dict[str, str]:
    """Give `user` a hash made with the older parameters; a token issued for it."""
    old = OLDER.hash(user.password)
    async with database.transaction() as session:
        await session.execute(update(User).where(User.id == user.id).values(hashed_password=old))
    stamp = credential_stamp(old, SECRET)
    return bearer(create_access_token(user.id, SECRET, 60, stamp=stamp))


def _current_parameters(hashed: str) -> bool:
    return not security._password_hash.current_hasher.check_needs_rehash(hashed)


async def test_login_rehashes_an_older_hash_and_keeps_open_sessions(
    client: httpx.AsyncClient, database: Database, user: Account
) -> None:
    open_session = await _with_older_hash(database, user)
    old_hash, _ = await _stored(database, user.id)
    assert not _current_parameters(old_hash)

    response = await login(client, user.email, user.password)

    assert response.status_code == 200
    new_hash, basis = await _stored(database, user.id)
    assert new_hash != old_hash
    assert _current_parameters(new_hash)
    assert security.verify_password(user.password, new_hash)
    assert basis == old_hash
    new_session = bearer(response.json()["access_token"])
    for headers in (open_session, new_session):
        assert (await client.get("/users/me", headers=headers)).status_code == 200
    assert (await client.get(f"/users/{user.id}", headers=open_session)).json()["email"] == (
        user.email
    )
    # Nothing more to do at the next login.
    assert (await login(client, user.email, user.password)).status_code == 200
    assert await _stored(database, user.id) == (new_hash, old_hash)


async def test_a_rehash_does_not_change_the_accounts_version(
    client: httpx.AsyncClient, database: Database, user: Account
) -> None:
    etag = (await client.get("/users/me", headers=user.headers)).headers["etag"]
    open_session = await _with_older_hash(database, user)

    assert (await login(client, user.email, user.password)).status_code == 200

    assert (await client.get("/users/me", headers=open_session)).headers["etag"] == etag


async def test_a_new_password_after_a_rehash_ends_every_session(
    client: httpx.AsyncClient, database: Database, user: Account
) -> None:
    open_session = await _with_older_hash(database, user)
    new_session = bearer((await login(client, user.email, user.password)).json()["access_token"])

    changed = await client.patch(
        "/users/me",
        json={"password": "another-password-1", "current_password": user.password},
        headers=new_session,
    )

    assert changed.status_code == 200
    for headers in (open_session, new_session):
        assert (await client.get("/users/me", headers=headers)).status_code == 401
    assert (await _stored(database, user.id))[1] is None
    fresh = await login(client, user.email, "another-password-1")
    assert fresh.status_code == 200
    me = await client.get("/users/me", headers=bearer(fresh.json()["access_token"]))
    assert me.status_code == 200


async def test_a_wrong_password_does_not_rehash(
    client: httpx.AsyncClient, database: Database, user: Account
) -> None:
    await _with_older_hash(database, user)
    before = await _stored(database, user.id)

    assert (await login(client, user.email, "not-the-password")).status_code == 401

    assert await _stored(database, user.id) == before
