"""Hardened accounts (issue 7, section 2), on SQLite and PostgreSQL.

Login throttling per account and per client address (429 + Retry-After, shared through
the database, bounded back-off), the bounded password hashing queue (503 + Retry-After),
the current password for a password change, and superusers who cannot remove themselves.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from catalog import security
from catalog.api.app import create_app
from catalog.config import Settings
from catalog.db.database import Database
from catalog.services.login_throttle import LoginPolicy
from tests.api import Fetch, MakeUser, age_login_failures, asgi_client, login
from tests.conftest import Account
from tests.waiting import TIMEOUT, eventually

TOO_MANY = {"detail": "Too many failed logins; retry later"}


# --- per account --------------------------------------------------------------------------


async def test_repeated_failures_for_an_account_are_429_even_with_the_right_password(
    client: httpx.AsyncClient, user: Account
) -> None:
    # Before: 200 wrong passwords in a row went through, and the right one straight after.
    statuses = [(await login(client, user.email, f"wrong-{n}")).status_code for n in range(20)]
    right = await login(client, user.email, user.password)

    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    assert right.status_code == 429
    assert right.json() == TOO_MANY
    assert 1 <= int(right.headers["Retry-After"]) <= 900


async def test_the_block_ends_and_the_right_password_works_again(
    client: httpx.AsyncClient, user: Account, database: Database
) -> None:
    for n in range(6):
        await login(client, user.email, f"wrong-{n}")
    blocked = await login(client, user.email, user.password)
    wait = int(blocked.headers["Retry-After"])
    assert blocked.status_code == 429

    await age_login_failures(database, wait)
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_back_off_doubles_and_is_bounded(
    client: httpx.AsyncClient, user: Account, database: Database
) -> None:
    waits: list[int] = []
    for _ in range(40):  # 5 free failures, then one failure and one 429 per block
        response = await login(client, user.email, "wrong")
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            await age_login_failures(database, waits[-1])  # the block is over: try again
            if waits[-1] == 900:
                break
    assert waits[:4] == [1, 2, 4, 8]
    assert max(waits) == 900  # LOGIN_LOCKOUT_MAX_SECONDS: never a permanent lock-out
    # After the longest block, the real user gets in.
    await age_login_failures(database, 900)
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_failures_idle_for_a_window_are_forgotten(
    client: httpx.AsyncClient, user: Account, database: Database, fetch: Fetch
) -> None:
    for n in range(4):
        await login(client, user.email, f"wrong-{n}")
    await age_login_failures(database, 901)
    for n in range(4):
        assert (await login(client, user.email, f"again-{n}")).status_code == 401
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_unknown_emails_are_throttled_like_accounts(client: httpx.AsyncClient) -> None:
    statuses = [(await login(client, "nobody@example.com", "x")).status_code for _ in range(7)]
    assert statuses == [401] * 5 + [429] * 2


async def test_a_success_forgets_the_accounts_failures(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    for n in range(3):
        await login(client, user.email, f"wrong-{n}")
    assert (await login(client, user.email, user.password)).status_code == 200

    # The account's row is gone; the address keeps its count.
    assert await fetch("SELECT scope, failures FROM login_failures") == [("address", 3)]
    for n in range(4):
        assert (await login(client, user.email, f"wrong-again-{n}")).status_code == 401


async def test_the_table_never_holds_what_was_typed(
    client: httpx.AsyncClient, fetch: Fetch
) -> None:
    await login(client, "secret.person@example.com", "hunter2-password")
    rows = await fetch("SELECT key, scope FROM login_failures")
    assert {scope for _, scope in rows} == {"account", "address", "global"}
    assert all(len(key) == 64 and "example" not in key for key, _ in rows)


# --- per address ----------------------------------------------------------------------------


@pytest.fixture
def strict_app(settings: Settings, database: Database) -> FastAPI:
    """The app with an address allowed only 3 failures."""
    return create_app(settings.model_copy(update={"login_max_failures_per_address": 3}), database)


async def test_failures_from_one_address_over_many_accounts_are_429(
    strict_app: FastAPI, user: Account
) -> None:
    async with asgi_client(strict_app) as client:
        statuses = [
            (await login(client, f"guess{n}@example.com", "x")).status_code for n in range(5)
        ]
        right = await login(client, user.email, user.password)
        async with asgi_client(strict_app, address=("192.0.2.7", 1)) as elsewhere:
            other_address = await login(elsewhere, user.email, user.password)

    assert statuses == [401, 401, 401, 429, 429]
    assert right.status_code == 429  # from the throttled address
    assert other_address.status_code == 200  # the account itself is fine


# --- shared and exact -----------------------------------------------------------------------


async def test_concurrent_failures_count_exactly(
    client: httpx.AsyncClient, settings: Settings, database: Database, fetch: Fetch
) -> None:
    app = create_app(settings.model_copy(update={"login_max_failures": 1000}), database)
    async with asgi_client(app) as lenient:
        responses = await asyncio.gather(
            *(login(lenient, "target@example.com", f"guess-{n}") for n in range(12))
        )
    assert {r.status_code for r in responses} == {401}
    rows = await fetch("SELECT scope, failures FROM login_failures ORDER BY scope")
    assert rows == [("account", 12), ("address", 12), ("global", 12)]


async def test_counts_are_shared_by_separate_app_instances(
    settings: Settings, user: Account
) -> None:
    # Two workers: separate apps, separate engines and pools, one database.
    first_db, second_db = Database.from_settings(settings), Database.from_settings(settings)
    try:
        async with (
            asgi_client(create_app(settings, first_db)) as first,
            asgi_client(create_app(settings, second_db)) as second,
        ):
            for n in range(5):
                await login(first if n % 2 else second, user.email, f"wrong-{n}")
            response = await login(second, user.email, user.password)
    finally:
        await first_db.dispose()
        await second_db.dispose()
    assert response.status_code == 429


async def test_a_clean_login_reads_once_and_writes_nothing(
    client: httpx.AsyncClient, user: Account, database: Database, count_statements: Any
) -> None:
    count_statements.reset()
    response = await login(client, user.email, user.password)
    assert response.status_code == 200
    statements = [s.split()[0].upper() for s in count_statements.statements]
    assert "INSERT" not in statements, statements
    assert "DELETE" not in statements, statements


def test_the_purge_runs_at_most_once_per_window() -> None:
    policy = LoginPolicy(window_seconds=900)
    assert policy.purge_due() is True
    assert policy.purge_due() is False


async def test_idle_rows_are_purged(
    client: httpx.AsyncClient, database: Database, fetch: Fetch, app: FastAPI
) -> None:
    await login(client, "old@example.com", "x")
    await age_login_failures(database, 901)
    app.state.login_policy._next_purge = 0.0  # due now
    await login(client, "new@example.com", "x")
    scopes = await fetch("SELECT scope, failures FROM login_failures ORDER BY scope")
    # the old account's rows are gone
    assert scopes == [("account", 1), ("address", 1), ("global", 1)]


# --- the hashing queue ------------------------------------------------------------------------


@pytest.fixture
def gated_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Make every password check wait for the returned event (a slow hash, on demand)."""
    gate = threading.Event()
    timed_out: list[str] = []
    for name in ("verify_password_or_dummy", "verify_and_update_or_dummy"):  # login: the 2nd
        real = getattr(security, name)

        def slow(password: str, hashed: str | None, real: Any = real, name: str = name) -> Any:
            if not gate.wait(timeout=TIMEOUT):
                timed_out.append(name)  # failed below: a raise here is only the request's 500
                raise TimeoutError("the test never opened the gate")
            return real(password, hashed)

        monkeypatch.setattr(security, name, slow)
    yield gate
    gate.set()
    assert not timed_out, f"password checks gave up waiting for the gate: {timed_out}"


@pytest.fixture
async def one_hash_at_a_time(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    previous = security.configure_hashing(1, 1)  # one running, one waiting
    try:
        yield create_app(
            settings.model_copy(update={"password_hash_threads": 1, "password_hash_queue": 1}),
            database,
        )
    finally:
        security.restore_hashing(previous)


def admitted(count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return security._pool.admitted == count

    return check


async def test_a_full_hashing_queue_is_503_with_retry_after(
    one_hash_at_a_time: FastAPI, gated_hashing: threading.Event, user: Account, fetch: Fetch
) -> None:
    async with asgi_client(one_hash_at_a_time) as client:
        running = asyncio.ensure_future(login(client, user.email, user.password))
        waiting = asyncio.ensure_future(login(client, user.email, user.password))
        await eventually(
            admitted(2), what="two logins admitted to the hashing pool (one running, one queued)"
        )
        refused = await login(client, user.email, user.password)
        registered = await client.post(
            "/users", json={"email": "new@example.com", "password": "password123"}
        )
        gated_hashing.set()
        done = await asyncio.gather(running, waiting)

    assert refused.status_code == registered.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert await fetch("SELECT email FROM users") == [(user.email,)]  # no account registered
    assert [r.status_code for r in done] == [200, 200]
    assert security._pool.admitted == 0


# --- password change ------------------------------------------------------------------------


async def test_a_password_change_needs_the_current_password(
    client: httpx.AsyncClient, user: Account
) -> None:
    missing = await client.patch(
        "/users/me", json={"password": "new-password-1"}, headers=user.headers
    )
    wrong = await client.patch(
        "/users/me",
        json={"password": "new-password-1", "current_password": "not-it"},
        headers=user.headers,
    )

    assert missing.status_code == 422
    assert "current_password" in missing.text
    assert wrong.status_code == 403
    assert wrong.json() == {"detail": "Current password is incorrect"}
    assert (await login(client, user.email, user.password)).status_code == 200
    assert (await login(client, user.email, "new-password-1")).status_code == 401


async def test_a_name_change_needs_no_password(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    response = await client.patch("/users/me", json={"full_name": "A"}, headers=user.headers)

    assert response.status_code == 200
    assert response.json()["full_name"] == "A"
    assert await fetch("SELECT id, full_name FROM users") == [(user.id, "A")]
    # The password is untouched: the old one still signs in.
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_guessing_the_current_password_is_throttled(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    stored_hash = "SELECT hashed_password FROM users WHERE id = :id"
    before = await fetch(stored_hash, id=user.id)
    statuses = []
    for n in range(7):
        response = await client.patch(
            "/users/me",
            json={"password": "new-password-1", "current_password": f"guess-{n}"},
            headers=user.headers,
        )
        statuses.append(response.status_code)
    assert statuses == [403] * 5 + [429] * 2
    # Read from the row: a login to prove it would itself be throttled (429) by now.
    assert await fetch(stored_hash, id=user.id) == before


# --- superusers cannot remove themselves ----------------------------------------------------


async def test_a_superuser_cannot_delete_themselves(
    client: httpx.AsyncClient, superuser: Account, fetch: Fetch
) -> None:
    response = await client.delete(f"/users/{superuser.id}", headers=superuser.headers)

    assert response.status_code == 409
    assert "cannot delete their own account" in response.json()["detail"]
    assert await fetch("SELECT id FROM users") == [(superuser.id,)]


@pytest.mark.parametrize("change", [{"is_superuser": False}, {"is_active": False}])
async def test_a_superuser_cannot_demote_or_deactivate_themselves(
    client: httpx.AsyncClient, superuser: Account, fetch: Fetch, change: dict[str, bool]
) -> None:
    response = await client.patch(f"/users/{superuser.id}", json=change, headers=superuser.headers)

    assert response.status_code == 409
    assert await fetch("SELECT is_superuser, is_active FROM users") == [(True, True)]


async def test_another_superuser_can_demote_or_delete_them(
    client: httpx.AsyncClient, superuser: Account, make_user: MakeUser, fetch: Fetch
) -> None:
    other = await make_user(is_superuser=True)
    demoted = await client.patch(
        f"/users/{superuser.id}", json={"is_superuser": False}, headers=other.headers
    )
    renamed = await client.patch(
        f"/users/{other.id}", json={"full_name": "Still super"}, headers=other.headers
    )
    demoted_row = await fetch("SELECT is_superuser FROM users WHERE id = :id", id=superuser.id)
    deleted = await client.delete(f"/users/{superuser.id}", headers=other.headers)

    assert (demoted.status_code, renamed.status_code, deleted.status_code) == (200, 200, 204)
    assert demoted_row == [(False,)]
    assert await fetch("SELECT id, full_name, is_superuser, is_active FROM users") == [
        (other.id, "Still super", True, True)
    ]
