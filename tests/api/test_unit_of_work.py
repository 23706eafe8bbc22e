"""The unit of work seen from HTTP: a write is committed before its response, or not at all.

Also the first-superuser bootstrap the app runs at start-up, which must be idempotent and
safe when several workers start at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.api.app import create_app
from catalog.config import Settings
from catalog.db.database import Database
from catalog.services.item_writes import StepwiseItemWrites
from tests.api import Fetch, bearer, login
from tests.conftest import Account, make_settings, refusing_tag_links, sqlite_only

INTERNAL_ERROR = {"detail": "Internal Server Error"}
# SQLite only: on PostgreSQL every one of these writes is a single statement that commits on
# its own, with no commit to fail after it (its atomicity is the database's, shown with
# refuse_tag_links on both databases).


@pytest.fixture
async def fresh_fetch(settings: Settings) -> AsyncIterator[Fetch]:
    """`fetch` through a brand-new engine: sees only what other connections can see."""
    database = Database.from_settings(settings)

    async def _fetch(sql: str, **params: Any) -> list[Any]:
        async with database.autocommit_session() as session:
            return list((await session.execute(text(sql), params)).all())

    yield _fetch
    await database.dispose()


def _checked_out(database: Database) -> int:
    """Connections the app's pool has lent out and not yet taken back."""
    return int(database.engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def _snapshot(fetch: Fetch) -> dict[str, list[Any]]:
    """Every row of every table, to compare before and after a failed write."""
    return {
        "users": await fetch(
            "SELECT id, email, hashed_password, full_name, is_active, is_superuser"
            " FROM users ORDER BY id"
        ),
        "items": await fetch(
            "SELECT id, name, description, price, is_active, updated_at, owner_id"
            " FROM items ORDER BY id"
        ),
        "tags": await fetch("SELECT id, name FROM tags ORDER BY id"),
        "item_tags": await fetch("SELECT item_id, tag_id FROM item_tags ORDER BY item_id, tag_id"),
    }


async def _create_item(client: httpx.AsyncClient, owner: Account, tags: list[str]) -> int:
    response = await client.post(
        "/items", json={"name": "lamp", "price": "10.00", "tags": tags}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    item_id: int = response.json()["id"]
    return item_id


# --- the commit fails: the client must not see a 2xx ------------------------------------

Write = Callable[[httpx.AsyncClient, Account, Account], Awaitable[httpx.Response]]


async def _register(client: httpx.AsyncClient, user: Account, su: Account) -> httpx.Response:
    return await client.post("/users", json={"email": "new@example.com", "password": "x" * 8})


async def _post_tag(client: httpx.AsyncClient, user: Account, su: Account) -> httpx.Response:
    return await client.post("/tags", json={"name": "fresh"}, headers=user.headers)


async def _patch_me(client: httpx.AsyncClient, user: Account, su: Account) -> httpx.Response:
    body = {
        "full_name": "Changed",
        "password": "another-password",
        "current_password": user.password,
    }
    return await client.patch("/users/me", json=body, headers=user.headers)


async def _patch_user(client: httpx.AsyncClient, user: Account, su: Account) -> httpx.Response:
    body = {"is_active": False, "is_superuser": True}
    return await client.patch(f"/users/{user.id}", json=body, headers=su.headers)


async def _delete_user(client: httpx.AsyncClient, user: Account, su: Account) -> httpx.Response:
    return await client.delete(f"/users/{user.id}", headers=su.headers)


async def _put_item_tags(client: httpx.AsyncClient, user: Account, su: Account) -> httpx.Response:
    item_id = (await client.get("/items")).json()[0]["id"]
    return await client.put(f"/items/{item_id}", json={"tags": ["green"]}, headers=user.headers)


# Writes that run as a transaction in the request's unit of work on SQLite.
WRITES: dict[str, Write] = {
    "POST /users": _register,
    "PUT /items/{id} with tags": _put_item_tags,
    "POST /tags": _post_tag,
    "PATCH /users/me": _patch_me,
    "PATCH /users/{id}": _patch_user,
    "DELETE /users/{id}": _delete_user,
}


@sqlite_only
@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
async def test_a_failed_commit_gives_an_error_and_leaves_nothing_behind(
    client: httpx.AsyncClient,
    database: Database,
    fetch: Fetch,
    user: Account,
    superuser: Account,
    monkeypatch: pytest.MonkeyPatch,
    write: Write,
) -> None:
    await _create_item(client, user, ["red"])  # something for a cascade to take
    before = await _snapshot(fetch)
    commits: list[AsyncSession] = []

    async def failing_commit(self: AsyncSession) -> None:
        commits.append(self)
        raise OperationalError("COMMIT", None, Exception("disk I/O error"))

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)

    response = await write(client, user, superuser)

    # Had the commit run after the response was sent, the client would hold a 2xx.
    assert len(commits) == 1
    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert "X-Request-ID" in response.headers
    monkeypatch.undo()
    assert await _snapshot(fetch) == before
    assert _checked_out(database) == 0  # rolled back and returned to the pool


@sqlite_only
async def test_a_failed_commit_of_a_password_change_keeps_the_old_password(
    client: httpx.AsyncClient, user: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_commit(self: AsyncSession) -> None:
        raise OperationalError("COMMIT", None, Exception("disk I/O error"))

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    response = await _patch_me(client, user, user)
    monkeypatch.undo()

    assert response.status_code == 500
    assert (await login(client, user.email, user.password)).status_code == 200
    assert (await login(client, user.email, "another-password")).status_code == 401


# --- a service fails half-way through a write -------------------------------------------


@pytest.mark.usefixtures("refuse_tag_links")
async def test_create_item_failing_after_its_insert_leaves_no_row(
    client: httpx.AsyncClient, fetch: Fetch, user: Account
) -> None:
    # The database refuses the links only after the item and its tags are in: the
    # failure comes from inside the write, whatever shape the write takes.
    response = await client.post(
        "/items", json={"name": "lamp", "price": 5, "tags": ["red", "blue"]}, headers=user.headers
    )

    assert response.status_code == 409, response.text
    assert await fetch("SELECT id FROM items") == []
    assert await fetch("SELECT id FROM tags") == []  # the tags it created are gone too
    assert await fetch("SELECT item_id FROM item_tags") == []


async def test_update_item_failing_after_its_update_changes_nothing(
    client: httpx.AsyncClient, fetch: Fetch, user: Account, database: Database
) -> None:
    item_id = await _create_item(client, user, ["red"])
    before = await _snapshot(fetch)

    # The database refuses the new links after the item's UPDATE (and the removal of the
    # old link) ran in the same write: all of it must be undone.
    async with refusing_tag_links(database):
        response = await client.patch(
            f"/items/{item_id}", json={"name": "renamed", "tags": ["blue"]}, headers=user.headers
        )

    assert response.status_code == 409, response.text
    assert await _snapshot(fetch) == before
    [(updated_at,)] = await fetch("SELECT updated_at FROM items WHERE id = :id", id=item_id)
    assert updated_at is None


@sqlite_only
async def test_update_item_failing_in_python_after_its_writes_changes_nothing(
    client: httpx.AsyncClient,
    fetch: Fetch,
    user: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item_id = await _create_item(client, user, ["red"])
    before = await _snapshot(fetch)
    real = StepwiseItemWrites._link

    async def link_then_fail(self: StepwiseItemWrites, *args: Any) -> None:
        await real(self, *args)
        raise RuntimeError("bug after the writes")

    monkeypatch.setattr(StepwiseItemWrites, "_link", link_then_fail)

    response = await client.patch(
        f"/items/{item_id}", json={"name": "renamed", "tags": ["blue"]}, headers=user.headers
    )

    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert await _snapshot(fetch) == before
    [(updated_at,)] = await fetch("SELECT updated_at FROM items WHERE id = :id", id=item_id)
    assert updated_at is None


async def test_a_duplicate_registration_leaves_only_the_first_account(
    client: httpx.AsyncClient, fetch: Fetch
) -> None:
    payload = {"email": "twin@example.com", "password": "password123"}
    first = await client.post("/users", json=payload)
    second = await client.post("/users", json=payload | {"password": "other-password"})

    assert (first.status_code, second.status_code) == (201, 409)
    assert await fetch("SELECT id FROM users") == [(first.json()["id"],)]
    assert (await login(client, "twin@example.com", "other-password")).status_code == 401


# --- a successful write is committed by the time its response arrives -------------------


async def test_a_registration_is_visible_to_other_connections_at_once(
    client: httpx.AsyncClient, database: Database, fresh_fetch: Fetch
) -> None:
    response = await client.post(
        "/users", json={"email": "seen@example.com", "password": "password123"}
    )

    assert response.status_code == 201
    assert _checked_out(database) == 0
    rows = await fresh_fetch("SELECT id, email FROM users")
    assert rows == [(response.json()["id"], "seen@example.com")]


async def test_item_writes_are_visible_to_other_connections_at_once(
    client: httpx.AsyncClient, user: Account, fresh_fetch: Fetch
) -> None:
    item_id = await _create_item(client, user, ["red"])
    assert await fresh_fetch("SELECT id, name FROM items") == [(item_id, "lamp")]
    assert len(await fresh_fetch("SELECT tag_id FROM item_tags")) == 1

    patched = await client.patch(f"/items/{item_id}", json={"name": "desk"}, headers=user.headers)
    assert patched.status_code == 200
    assert await fresh_fetch("SELECT name FROM items") == [("desk",)]

    deleted = await client.delete(f"/items/{item_id}", headers=user.headers)
    assert deleted.status_code == 204
    assert await fresh_fetch("SELECT id FROM items") == []


async def test_user_admin_writes_are_visible_to_other_connections_at_once(
    client: httpx.AsyncClient, user: Account, superuser: Account, fresh_fetch: Fetch
) -> None:
    patched = await client.patch(
        f"/users/{user.id}", json={"full_name": "Seen"}, headers=superuser.headers
    )
    assert patched.status_code == 200
    assert await fresh_fetch("SELECT full_name FROM users WHERE id = :id", id=user.id) == [
        ("Seen",)
    ]

    deleted = await client.delete(f"/users/{user.id}", headers=superuser.headers)
    assert deleted.status_code == 204
    assert await fresh_fetch("SELECT id FROM users WHERE id = :id", id=user.id) == []


async def test_a_new_password_works_on_the_very_next_request(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await client.patch(
        "/users/me",
        json={"password": "next-password", "current_password": user.password},
        headers=user.headers,
    )

    assert response.status_code == 200
    assert (await login(client, user.email, "next-password")).status_code == 200


# --- first superuser bootstrap ----------------------------------------------------------

ADMIN_EMAIL = "Admin@Example.com"
ADMIN_PASSWORD = "admin-password-1"


def _bootstrap_settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        first_superuser_email=ADMIN_EMAIL,
        first_superuser_password=ADMIN_PASSWORD,
    )


async def _start_and_stop(app: FastAPI) -> None:
    """Run the app's lifespan once, as a server worker does at start and shutdown."""
    async with app.router.lifespan_context(app):
        pass


async def _assert_one_admin(client: httpx.AsyncClient, fetch: Fetch) -> None:
    rows = await fetch("SELECT email, is_superuser, is_active FROM users")
    assert [(email, bool(su), bool(active)) for email, su, active in rows] == [
        ("admin@example.com", True, True)
    ]
    token = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert token.status_code == 200
    users = await client.get("/users", headers=bearer(token.json()["access_token"]))
    assert users.status_code == 200  # it really is a superuser


async def test_first_superuser_is_created_once_across_restarts(
    client: httpx.AsyncClient, database_url: str, database: Database, fetch: Fetch
) -> None:
    app = create_app(_bootstrap_settings(database_url), database)

    await _start_and_stop(app)
    await _start_and_stop(app)

    await _assert_one_admin(client, fetch)


async def test_first_superuser_is_created_once_by_workers_starting_together(
    client: httpx.AsyncClient, database_url: str, database: Database, fetch: Fetch
) -> None:
    # Each worker has its own engine, as separate processes would.
    settings = _bootstrap_settings(database_url)
    workers = [Database.from_settings(settings) for _ in range(3)]
    try:
        apps = [create_app(settings, db) for db in workers]
        await asyncio.gather(*(_start_and_stop(app) for app in apps))
    finally:
        for db in workers:
            await db.dispose()

    await _assert_one_admin(client, fetch)


async def test_first_superuser_bootstrap_leaves_an_existing_account_alone(
    client: httpx.AsyncClient,
    database_url: str,
    database: Database,
    fetch: Fetch,
    make_user: Any,
) -> None:
    existing = await make_user("admin@example.com", password="original-password")
    before = await _snapshot(fetch)

    await _start_and_stop(create_app(_bootstrap_settings(database_url), database))

    assert await _snapshot(fetch) == before
    assert (await login(client, existing.email, "original-password")).status_code == 200
    assert (await login(client, existing.email, ADMIN_PASSWORD)).status_code == 401


async def test_no_bootstrap_without_first_superuser_settings(
    database_url: str, database: Database, fetch: Fetch
) -> None:
    await _start_and_stop(create_app(make_settings(database_url), database))

    assert await fetch("SELECT id FROM users") == []


# --- reads never wait for writers ---------------------------------------------------------


async def test_authenticated_reads_do_not_wait_for_a_writer(
    client: httpx.AsyncClient, database: Database, user: Account, superuser: Account
) -> None:
    """A GET, authenticated or not, opens no write transaction: a writer holding the write
    lock (SQLite's one writer; on PostgreSQL an EXCLUSIVE lock on the tables, which only
    plain reads get past) does not hold it up."""
    item_id = await _create_item(client, user, ["red"])
    async with database.unit_of_work() as writer:
        session = await writer.session()
        if database.backend.name == "postgresql":
            await session.execute(text("LOCK TABLE users, items, tags IN EXCLUSIVE MODE"))
        else:
            await session.execute(text("UPDATE items SET name = name"))  # holds the lock
        async with asyncio.timeout(10):
            responses = await asyncio.gather(
                client.get("/users/me", headers=user.headers),
                client.get(f"/users/{user.id}", headers=superuser.headers),
                client.get("/users", headers=superuser.headers),
                client.get(f"/items/{item_id}", headers=user.headers),
                client.get("/items", headers=user.headers),
                client.get("/tags"),
                client.get(f"/users/{user.id}/items"),
                client.get("/tags/red/items"),
            )
    assert [r.status_code for r in responses] == [200] * len(responses)
