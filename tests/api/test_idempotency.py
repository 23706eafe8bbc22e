"""`Idempotency-Key` on POST: a retried write is answered, not repeated (issue 8, part 3)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from sqlalchemy import text

from catalog.config import Settings
from catalog.db.database import Database
from catalog.services import idempotency
from catalog.services.idempotency import purge_expired
from tests.api import Fetch
from tests.api.test_outages import app_client
from tests.conftest import Account, postgresql_only, refusing_tag_links
from tests.waiting import eventually

ITEM = {"name": "lamp", "price": "10.00", "tags": ["red"]}


def keyed(account: Account, key: str) -> dict[str, str]:
    return account.headers | {"Idempotency-Key": key}


async def test_a_retry_gets_the_first_response_and_writes_nothing(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    first = await client.post("/items", json=ITEM, headers=keyed(user, "k-1"))
    retry = await client.post("/items", json=ITEM, headers=keyed(user, "k-1"))

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["etag"] == first.headers["etag"]
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(await fetch("SELECT id FROM items")) == 1
    # Without a key, the same body is a new item, as ever.
    assert (await client.post("/items", json=ITEM, headers=user.headers)).status_code == 201
    assert len(await fetch("SELECT id FROM items")) == 2


async def test_a_write_without_a_key_is_not_fingerprinted(
    client: httpx.AsyncClient, user: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    fingerprinted: list[object] = []

    def spy(method: str, path: str, body: object, *, key: str) -> str:
        fingerprinted.append(body)
        return real(method, path, body, key=key)

    real = idempotency.fingerprint
    monkeypatch.setattr(idempotency, "fingerprint", spy)
    for path, body in (("/items", ITEM), ("/tags", {"name": "blue"})):
        assert (await client.post(path, json=body, headers=user.headers)).status_code == 201
    assert fingerprinted == []  # keyless writes (the most) pay nothing for keys
    await client.post("/tags", json={"name": "green"}, headers=keyed(user, "k-f"))
    assert fingerprinted == [{"name": "green"}]  # the validated body, as JSON


async def test_the_same_key_for_another_request_is_refused(
    client: httpx.AsyncClient, user: Account, fetch: Fetch
) -> None:
    await client.post("/items", json=ITEM, headers=keyed(user, "k-2"))
    other = await client.post("/items", json=ITEM | {"price": 11}, headers=keyed(user, "k-2"))
    elsewhere = await client.post("/tags", json={"name": "x"}, headers=keyed(user, "k-2"))

    assert other.status_code == elsewhere.status_code == 422
    [issue] = other.json()["detail"]
    assert issue["loc"] == ["header", "Idempotency-Key"]
    assert issue["msg"] == "This Idempotency-Key was used for a different request"
    assert len(await fetch("SELECT id FROM items")) == 1
    assert await fetch("SELECT name FROM tags") == [("red",)]


async def test_keys_belong_to_their_user(
    client: httpx.AsyncClient, user: Account, other_user: Account, fetch: Fetch
) -> None:
    mine = await client.post("/items", json=ITEM, headers=keyed(user, "shared"))
    theirs = await client.post("/items", json=ITEM, headers=keyed(other_user, "shared"))
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["owner_id"] == other_user.id
    assert len(await fetch("SELECT id FROM items")) == 2


async def test_a_failed_write_stores_no_key_and_the_retry_runs_anew(
    client: httpx.AsyncClient, database: Database, user: Account, fetch: Fetch
) -> None:
    # The database refuses the write after the key was claimed in the same transaction.
    async with refusing_tag_links(database):
        failed = await client.post("/items", json=ITEM, headers=keyed(user, "k-3"))
    assert failed.status_code == 409
    assert await fetch("SELECT key FROM idempotency_keys") == []

    retry = await client.post("/items", json=ITEM, headers=keyed(user, "k-3"))
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert len(await fetch("SELECT id FROM items")) == 1


# No bound on waiting for a lock (or on a statement, or a request): a busy machine must not
# turn "waits for the first request" into a 409 or a 503 in these tests.
PATIENT = {"db_lock_timeout_ms": 0, "db_statement_timeout_ms": 0, "request_timeout": 300}


async def test_concurrent_duplicates_write_once(
    settings: Settings, user: Account, fetch: Fetch
) -> None:
    """Ten copies at once: one write; the nine others wait for it and replay its answer."""
    async with app_client(settings, **PATIENT) as (client, _):
        responses = await asyncio.gather(
            *(client.post("/items", json=ITEM, headers=keyed(user, "burst")) for _ in range(10))
        )
    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    replayed = [r.headers.get("idempotent-replayed") for r in responses]
    assert sorted(replayed, key=str) == [None] + ["true"] * 9
    assert len({r.text for r in responses}) == 1  # every 201 is the same item
    assert len({r.headers["etag"] for r in responses}) == 1
    assert len(await fetch("SELECT id FROM items")) == 1
    assert len(await fetch("SELECT key FROM idempotency_keys")) == 1


@postgresql_only
async def test_a_retry_while_the_first_holds_the_key_waits_and_gets_the_replay(
    settings: Settings, user: Account, fetch: Fetch
) -> None:
    """README: "a retry while the first is still running waits for it". The first request
    is held inside its transaction, after claiming the key, by a table lock taken here on
    `items`; both waits are observed in pg_stat_activity before the lock is let go."""
    async with (
        app_client(settings, **PATIENT) as (client, _),
        await psycopg.AsyncConnection.connect(settings.database_url) as holder,
        await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as observer,
    ):
        await holder.execute("LOCK TABLE items IN EXCLUSIVE MODE")  # inserts wait, reads pass

        async def waiting_on(table: str) -> list[int]:
            rows = await observer.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE %s",
                (f"%{table}%",),
            )
            return [pid for (pid,) in await rows.fetchall()]

        first = asyncio.ensure_future(client.post("/items", json=ITEM, headers=keyed(user, "held")))
        # The first has claimed its key (its INSERT into idempotency_keys is done: the
        # write on items comes after it, in the same transaction) and waits for the table.
        [first_pid] = await eventually(
            lambda: waiting_on("INSERT INTO items"), what="the first request waiting on items"
        )
        assert await fetch("SELECT key FROM idempotency_keys") == []  # not committed yet
        retry = asyncio.ensure_future(client.post("/items", json=ITEM, headers=keyed(user, "held")))
        # The retry waits on the first one's claim of the key, not on the table.
        retry_pids = await eventually(
            lambda: waiting_on("idempotency_keys"), what="the retry waiting on the key"
        )
        assert first_pid not in retry_pids
        assert not first.done()
        assert not retry.done()
        await holder.rollback()  # let the first go
        first_response, retry_response = await asyncio.gather(first, retry)

    assert (first_response.status_code, retry_response.status_code) == (201, 201)
    assert "idempotent-replayed" not in first_response.headers
    assert retry_response.headers["idempotent-replayed"] == "true"
    assert retry_response.json() == first_response.json()
    assert retry_response.headers["etag"] == first_response.headers["etag"]
    assert len(await fetch("SELECT id FROM items")) == 1


async def test_registration_can_be_retried_with_a_key(
    client: httpx.AsyncClient, fetch: Fetch
) -> None:
    body = {"email": "new@example.com", "password": "password123"}
    first = await client.post("/users", json=body, headers={"Idempotency-Key": "signup"})
    retry = await client.post("/users", json=body, headers={"Idempotency-Key": "signup"})
    guess = await client.post(
        "/users",
        json=body | {"password": "another-password"},
        headers={"Idempotency-Key": "signup"},
    )
    assert (first.status_code, retry.status_code, guess.status_code) == (201, 201, 422)
    assert retry.json() == first.json()
    assert len(await fetch("SELECT id FROM users")) == 1


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"with space", "naïve".encode("latin-1")])
async def test_a_malformed_key_is_422(client: httpx.AsyncClient, user: Account, key: bytes) -> None:
    headers = [(name.encode(), value.encode()) for name, value in user.headers.items()]
    response = await client.post("/items", json=ITEM, headers=[*headers, (b"Idempotency-Key", key)])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_expired_keys_are_taken_over_and_purged(
    client: httpx.AsyncClient, database: Database, user: Account, fetch: Fetch
) -> None:
    await client.post("/items", json=ITEM, headers=keyed(user, "old"))
    await client.post("/items", json=ITEM, headers=keyed(user, "live"))
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with database.transaction() as session:
        from sqlalchemy import text

        await session.execute(
            text("UPDATE idempotency_keys SET expires_at = :past WHERE key = 'old'"),
            {"past": past.replace(tzinfo=None) if database.backend.name == "sqlite" else past},
        )

    again = await client.post("/items", json=ITEM, headers=keyed(user, "old"))
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers  # expired: a new write
    assert len(await fetch("SELECT id FROM items")) == 3

    async with database.transaction() as session:
        from sqlalchemy import text

        await session.execute(
            text("UPDATE idempotency_keys SET expires_at = :past WHERE key = 'old'"),
            {"past": past.replace(tzinfo=None) if database.backend.name == "sqlite" else past},
        )
    async with database.unit_of_work() as uow:
        await purge_expired(uow)
    assert await fetch("SELECT key FROM idempotency_keys") == [("live",)]


@postgresql_only
async def test_a_duplicate_of_a_request_still_in_progress_is_409(
    client: httpx.AsyncClient, settings: Settings, user: Account, fetch: Fetch
) -> None:
    """The first request holds its key (here: an open transaction that claimed it); a
    duplicate waits up to the lock timeout, then is told the first is in progress."""
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(settings.database_url) as first:
        await first.execute(
            "INSERT INTO idempotency_keys VALUES (%s, 'busy', 'f', 0, '', '{}', %s, %s)",
            (f"user:{user.id}", now, now + timedelta(hours=1)),
        )
        async with app_client(settings, db_lock_timeout_ms=200) as (own, _):
            duplicate = await own.post("/items", json=ITEM, headers=keyed(user, "busy"))
        await first.rollback()
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "detail": "A request with this Idempotency-Key is still in progress"
    }
    assert await fetch("SELECT id FROM items") == []


@pytest.mark.parametrize("hours", [1, 3])
async def test_keys_live_for_idempotency_key_ttl_hours(
    settings: Settings, user: Account, fetch: Fetch, hours: int
) -> None:
    """IDEMPOTENCY_KEY_TTL_HOURS sets each key's expiry; past it, the key is purged."""
    async with app_client(settings, idempotency_key_ttl_hours=hours) as (client, database):
        created = await client.post("/items", json=ITEM, headers=keyed(user, f"ttl-{hours}"))
        assert created.status_code == 201
        [(created_at, expires_at)] = await fetch(
            "SELECT created_at, expires_at FROM idempotency_keys"
        )
        lifetime = as_datetime(expires_at) - as_datetime(created_at)
        assert lifetime == timedelta(hours=hours)
        # Still live just before its expiry (purging keeps it), gone once past it.
        async with database.unit_of_work() as uow:
            await purge_expired(uow)
        assert len(await fetch("SELECT key FROM idempotency_keys")) == 1
        async with database.transaction() as session:
            await session.execute(
                text("UPDATE idempotency_keys SET expires_at = :at"),
                {"at": stored_time(database, datetime.now(UTC) - timedelta(seconds=1))},
            )
        async with database.unit_of_work() as uow:
            await purge_expired(uow)
        assert await fetch("SELECT key FROM idempotency_keys") == []


def as_datetime(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def stored_time(database: Database, when: datetime) -> datetime:
    return when.replace(tzinfo=None) if database.backend.name == "sqlite" else when
