"""What an attacker tried (issue 18), on SQLite and PostgreSQL: each test failed before its fix.

Login lock-outs of a named account, spurious 429s from clock order, registration floods,
the idempotency fingerprint of a password, If-Match/If-None-Match parsing, X-Catalog-LSN.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from catalog import security
from catalog.admin.views import _expected
from catalog.api import conditional
from catalog.api.app import create_app
from catalog.config import Settings
from catalog.db.database import Database
from catalog.schemas import UserCreate
from catalog.services.login_throttle import LoginAttempt, LoginPolicy
from tests.api import Fetch, age_login_failures, asgi_client, login
from tests.conftest import Account
from tests.waiting import TIMEOUT, eventually

OWNER_ADDRESS = ("127.0.0.2", 1000)
ATTACKER_ADDRESS = ("127.0.0.3", 1000)


# --- finding 4: a named account cannot be locked out from another address -----------------


async def test_an_attacker_elsewhere_never_costs_the_owner_a_login(
    app: FastAPI, database: Database, user: Account
) -> None:
    # Before: after 5 wrong passwords from anywhere, the owner's right password was 429, and
    # one more failure whenever a block ended kept it so (53 of 58 correct logins refused).
    owner_statuses, attacker_statuses = [], []
    async with (
        asgi_client(app, address=ATTACKER_ADDRESS) as attacker,
        asgi_client(app, address=OWNER_ADDRESS) as owner,
    ):
        for round_ in range(10):
            # The attacker guesses until blocked (bounded), then the owner signs in.
            for n in range(10):
                response = await login(attacker, user.email, f"guess-{round_}-{n}")
                attacker_statuses.append(response.status_code)
                if response.status_code == 429:
                    break
            owner_statuses.append((await login(owner, user.email, user.password)).status_code)
            # The attacker waits out the block, and goes on.
            await age_login_failures(database, int(response.headers.get("Retry-After", "0")))
    assert owner_statuses == [200] * 10
    # Guessing from that address stays throttled: 5 free failures, then back-off.
    assert attacker_statuses[:6] == [401] * 5 + [429]
    assert attacker_statuses.count(429) == 10


async def test_guessing_from_many_addresses_is_bounded_per_account(
    settings: Settings, database: Database, user: Account
) -> None:
    app = create_app(settings.model_copy(update={"login_max_failures_per_account": 6}), database)
    for n in range(6):  # six addresses, one wrong password each: the account-wide cap
        async with asgi_client(app, address=(f"192.0.2.{n + 1}", 1)) as bot:
            assert (await login(bot, user.email, "guess")).status_code == 401
    async with asgi_client(app, address=("192.0.2.1", 1)) as bot:
        again = await login(bot, user.email, "guess-again")
    async with asgi_client(app, address=OWNER_ADDRESS) as owner:
        owner_login = await login(owner, user.email, user.password)

    assert again.status_code == 429  # an address that failed for the account is held back
    assert owner_login.status_code == 200  # one that never failed still gets in


# --- finding 6: under the threshold the wait is 0, whatever the order of the clocks --------


async def test_a_failure_stamped_later_than_a_checks_clock_does_not_block(
    database: Database,
) -> None:
    # Before: `last + 0 - now` > 0 when a concurrent failure was stamped after this attempt
    # was created: a 429 with Retry-After: 1 after a single failure.
    policy = LoginPolicy()
    now = datetime.now(UTC)
    earlier = LoginAttempt(policy, "target@example.com", "127.0.0.1", now=now)
    later = LoginAttempt(policy, "target@example.com", "127.0.0.1", now=now + timedelta(seconds=2))
    async with database.unit_of_work() as uow:
        await later.failed(uow)
    async with database.unit_of_work() as uow:
        await earlier.check(uow)  # one failure, far below 5: no TooManyRequestsError


def test_under_the_threshold_no_key_blocks() -> None:
    policy = LoginPolicy()
    now = datetime.now(UTC)
    attempt = LoginAttempt(policy, "a@example.com", "127.0.0.1", now=now)
    future = {"scope": "account", "failures": 4, "last_failure_at": now + timedelta(seconds=5)}
    assert attempt._wait(future) == 0.0
    blocked = {"scope": "account", "failures": 5, "last_failure_at": now}
    assert attempt._wait(blocked) == 1.0


# --- finding 7: a superscript digit in an entity tag is not a 500 ----------------------------


def _as_bytes(headers: dict[str, str]) -> dict[bytes, bytes]:
    """Headers as raw bytes, so one can carry a byte that is not ASCII (latin-1)."""
    return {name.encode(): value.encode() for name, value in headers.items()}


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
async def test_a_non_ascii_digit_in_if_match_is_a_failed_precondition(
    client: httpx.AsyncClient, user: Account, fetch: Fetch, method: str
) -> None:
    # Before: '²'.isdigit() is true and int('²') raised: a 500 with a traceback.
    created = await client.post("/items", json={"name": "lamp", "price": "1"}, headers=user.headers)
    item_id = created.json()["id"]
    odd = _as_bytes(user.headers) | {b"If-Match": f'"{item_id}.\xb2"'.encode("latin-1")}
    body = {"name": "x"} if method != "DELETE" else None
    item = await client.request(method, f"/items/{item_id}", json=body, headers=odd)
    assert item.status_code == 412
    assert await fetch("SELECT name, version FROM items") == [("lamp", 1)]


async def test_a_non_ascii_digit_in_if_match_on_my_account_is_a_failed_precondition(
    client: httpx.AsyncClient, user: Account
) -> None:
    odd = _as_bytes(user.headers) | {b"If-Match": f'"{user.id}.\xb2"'.encode("latin-1")}
    response = await client.patch("/users/me", json={"full_name": "x"}, headers=odd)
    assert response.status_code == 412


def test_the_metrics_setting_refuses_a_non_ascii_digit() -> None:
    with pytest.raises(ValidationError, match="METRICS must be off, on, or a port number"):
        Settings(metrics="\xb2")


def test_an_admin_form_version_of_non_ascii_digits_names_no_version() -> None:
    assert _expected("\xb2") is None
    assert _expected("3") == (3,)


# --- finding 2: an If-None-Match of millions of tags is read no further than a bound -------


def test_entity_tag_lists_are_read_to_a_bound() -> None:
    many = ", ".join(f'"x{n}"' for n in range(100_000))
    assert len(conditional._tags(many) or []) == conditional.MAX_LIST_TAGS
    assert conditional.is_current('"7.1", ' + many, 7, 1)
    assert conditional.expected_versions('"7.2", ' + many, 7) == (2,)


async def test_a_huge_if_none_match_is_answered(client: httpx.AsyncClient, user: Account) -> None:
    created = await client.post("/items", json={"name": "lamp", "price": "1"}, headers=user.headers)
    item_id = created.json()["id"]
    tags = ", ".join(f'"x{n}"' for n in range(100_000))
    current = await client.get(
        f"/items/{item_id}", headers={"If-None-Match": f'"{item_id}.1", {tags}'}
    )
    other = await client.get(f"/items/{item_id}", headers={"If-None-Match": tags})
    assert (current.status_code, other.status_code) == (304, 200)


# --- finding 3: no fast hash of a password is stored --------------------------------------


async def test_a_registrations_stored_fingerprint_cannot_be_guessed_offline(
    client: httpx.AsyncClient, fetch: Fetch
) -> None:
    # Before: the fingerprint was the SHA-256 of the body, password included: from a leaked
    # database, a dictionary found "sunshine1" at 848,000 guesses per second.
    email = "victim@example.com"
    response = await client.post(
        "/users",
        json={"email": email, "password": "sunshine1"},
        headers={"Idempotency-Key": "register-1"},
    )
    assert response.status_code == 201
    [(stored,)] = await fetch("SELECT fingerprint FROM idempotency_keys")

    def unkeyed(password: str) -> str:
        body = UserCreate(email=email, password=password).model_dump(mode="json")
        canonical = orjson.dumps(["POST", "/users", body], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    assert stored not in {unkeyed(guess) for guess in ("password1", "sunshine1", "letmein1")}
    # The replay still recognizes the same request.
    again = await client.post(
        "/users",
        json={"email": email, "password": "sunshine1"},
        headers={"Idempotency-Key": "register-1"},
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"


# --- finding 5: registration floods never make a login fail -------------------------------


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[str], threading.Event]]:
    """Every new-password hash, counted, and held until the returned event is set."""
    done: list[str] = []
    timed_out: list[str] = []
    gate = threading.Event()
    real = security.hash_password

    def gated(password: str) -> str:
        if not gate.wait(timeout=TIMEOUT):
            timed_out.append(password)  # failed below: a raise here is only the request's 500
            raise TimeoutError("the test never opened the gate")
        done.append(password)
        return real(password)

    monkeypatch.setattr(security, "hash_password", gated)
    yield done, gate
    gate.set()
    assert not timed_out, f"{len(timed_out)} hashes gave up waiting for the gate"


async def test_a_taken_email_is_refused_before_any_hashing(
    client: httpx.AsyncClient, user: Account, hashes: tuple[list[str], threading.Event]
) -> None:
    done, gate = hashes
    gate.set()
    response = await client.post("/users", json={"email": user.email, "password": "password123"})
    assert response.status_code == 409
    assert done == []  # before: one argon2 hash per attempt, before the duplicate was found


@pytest.fixture
async def small_pool(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    """One hashing thread and 4 waiting places (2 of them kept for password checks)."""
    previous = security.configure_hashing(1, 4)
    try:
        yield create_app(
            settings.model_copy(update={"password_hash_threads": 1, "password_hash_queue": 4}),
            database,
        )
    finally:
        security.restore_hashing(previous)


async def _until_admitted(count: int) -> None:
    for _ in range(500):  # bounded: fail rather than wait forever
        if security._pool.admitted == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"admitted {security._pool.admitted}, never {count}")


async def test_a_registration_flood_from_one_address_leaves_logins_alone(
    small_pool: FastAPI, user: Account, hashes: tuple[list[str], threading.Event]
) -> None:
    done, gate = hashes
    async with (
        asgi_client(small_pool, address=ATTACKER_ADDRESS) as attacker,
        asgi_client(small_pool, address=OWNER_ADDRESS) as owner,
    ):
        flood = [
            asyncio.ensure_future(
                attacker.post("/users", json={"email": f"bot{n}@example.com", "password": "x" * 8})
            )
            for n in range(20)
        ]

        async def eighteen_answered() -> bool:
            return sum(task.done() for task in flood) == 18

        # The address's two places hold their hashes at the gate; the other 18 are refused.
        await eventually(eighteen_answered, what="18 of the 20 registrations answered")
        await _until_admitted(2)
        refused = [task.result() for task in flood if task.done()]
        logging_in = asyncio.ensure_future(login(owner, user.email, user.password))
        await _until_admitted(3)  # the owner's check is admitted, not refused
        gate.set()
        owner_login = await logging_in
        statuses = [response.status_code for response in await asyncio.gather(*flood)]

    assert owner_login.status_code == 200
    assert {r.status_code for r in refused} == {429}
    assert sorted(statuses) == [201] * 2 + [429] * 18
    assert len(done) == 2


async def test_new_password_hashing_leaves_places_for_password_checks(
    small_pool: FastAPI, user: Account, hashes: tuple[list[str], threading.Event]
) -> None:
    # Many addresses, one registration each: they take 3 of the 5 places, never the last 2.
    _, gate = hashes
    clients = [asgi_client(small_pool, address=(f"192.0.2.{n}", 1)) for n in range(1, 6)]
    try:
        flood = [
            asyncio.ensure_future(
                c.post("/users", json={"email": f"new{n}@example.com", "password": "x" * 8})
            )
            for n, c in enumerate(clients)
        ]
        await _until_admitted(3)
        async with asgi_client(small_pool, address=OWNER_ADDRESS) as owner:
            logging_in = asyncio.ensure_future(login(owner, user.email, user.password))
            await _until_admitted(4)
            gate.set()
            owner_login = await logging_in
        statuses = sorted(r.status_code for r in await asyncio.gather(*flood))
    finally:
        for c in clients:
            await c.aclose()
    assert owner_login.status_code == 200
    assert statuses == [201] * 3 + [503] * 2


async def test_registrations_per_address_is_the_setting(
    settings: Settings, database: Database, hashes: tuple[list[str], threading.Event]
) -> None:
    # REGISTRATIONS_PER_ADDRESS=1: a second registration while the first one hashes is 429.
    _, gate = hashes
    app = create_app(settings.model_copy(update={"registrations_per_address": 1}), database)
    async with asgi_client(app, address=ATTACKER_ADDRESS) as client:
        first = asyncio.ensure_future(
            client.post("/users", json={"email": "first@example.com", "password": "x" * 8})
        )
        await _until_admitted(1)
        second = await client.post(
            "/users", json={"email": "second@example.com", "password": "x" * 8}
        )
        gate.set()
        assert second.status_code == 429
        assert (await first).status_code == 201
