"""Read replicas with read-your-writes, against a real streaming replica delayed on purpose.

The replica applies each commit `DELAY` seconds late (recovery_min_apply_delay), so a read
it serves right after a write is visibly stale. A client that sends back the write's
`X-Catalog-LSN` must never see that; a client that does not may (the documented contract).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import psycopg
import pytest
from deploy.postgres import PostgresInstance

from tests.faults.harness import CatalogService, catalog_command, running_service
from tests.infra.fixtures import MakeReplica
from tests.waiting import eventually

pytestmark = pytest.mark.slow

DELAY = 1.5  # seconds the replica waits before applying a commit
ROUNDS = 25
LSN = "X-Catalog-LSN"


def _migrated(primary: PostgresInstance) -> str:
    primary.create_database("catalog")
    done = catalog_command(primary.url("catalog"), "db", "upgrade")
    assert done.returncode == 0, done.stderr
    return primary.url("catalog")


@asynccontextmanager
async def _client(service: CatalogService) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed up and logged in (its writes and reads carry its token)."""
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
        account = {"email": f"r{time.monotonic_ns()}@example.com", "password": "replica-pass-1"}
        assert (await client.post("/users", json=account)).status_code == 201
        form = {"username": account["email"], "password": account["password"]}
        token = (await client.post("/auth/token", data=form)).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


async def _create(client: httpx.AsyncClient, name: str) -> tuple[str, str]:
    """Create an item; its path and the write's consistency token."""
    created = await client.post("/items", json={"name": name, "price": 1})
    assert created.status_code == 201, created.text
    return f"/items/{created.json()['id']}", created.headers[LSN]


async def _stale_tokenless_read(client: httpx.AsyncClient, within: float) -> bool:
    """Whether a tokenless read right after a write comes back stale (a replica served it)
    at least once within `within` seconds: the replica is in use."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        path, _ = await _create(client, "probe")
        if (await client.get(path)).status_code == 404:
            return True
        await asyncio.sleep(0.2)
    return False


async def test_a_client_that_sends_its_token_never_reads_older_than_its_writes(
    private_postgres: PostgresInstance,
    make_replica: MakeReplica,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = _migrated(private_postgres)
    replica = make_replica(delay=DELAY)
    replica.wait_for_replay(timeout=DELAY + 30)
    settings = {"DATABASE_REPLICA_URLS": replica.url("catalog"), "LOG_LEVEL": "WARNING"}
    with running_service(url, **settings) as service:
        async with _client(service) as client:
            assert await _stale_tokenless_read(client, within=10), "the replica is never used"

            stale_with_token = stale_without = 0
            for round_ in range(ROUNDS):  # write, then read back at once, in a tight loop
                path, token = await _create(client, f"lamp{round_}x")
                read = await client.get(path, headers={LSN: token})
                stale_with_token += read.status_code != 200
                changed = await client.patch(path, json={"price": 2}, headers={LSN: token})
                assert changed.status_code == 200, changed.text
                token = changed.headers[LSN]
                read = await client.get(path, headers={LSN: token})
                stale_with_token += read.json()["price"] != 2
                page = await client.get(
                    "/items", params={"q": f"lamp{round_}x"}, headers={LSN: token}
                )
                stale_with_token += len(page.json()) != 1

                path, _ = await _create(client, f"tokenless{round_}")
                stale_without += (await client.get(path)).status_code == 404

            # A token the replica has replayed lets it serve the read: after the client's
            # write has been applied there, a change it never saw (made behind the service's
            # back) is not forced onto it.
            path, token = await _create(client, "seen")
            replica.wait_for_replay(timeout=DELAY + 10)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE items SET name = 'unseen' WHERE id = %s", (path.split("/")[-1],)
                )

            async def served_by_the_replica() -> httpx.Response | None:
                # The primary answers "unseen" until the service's poller has seen the
                # replica replay past the token; the replica says "seen" until it applies
                # the update, DELAY seconds after it.
                read = await client.get(path, headers={LSN: token})
                return read if read.json()["name"] == "seen" else None

            await eventually(
                served_by_the_replica,
                what="a read with a token the replica has replayed served by the replica",
                within=DELAY,
            )

    with capsys.disabled():
        print(
            f"\n[replicas] {ROUNDS} write-then-read rounds, replica {DELAY} s behind: "
            f"stale reads with the token {stale_with_token} of {3 * ROUNDS}, "
            f"without it {stale_without} of {ROUNDS}"
        )
    assert stale_with_token == 0
    assert stale_without > 0  # without the token reads may lag: the replica did serve them


async def test_a_malformed_token_is_a_422_naming_the_header(
    private_postgres: PostgresInstance, make_replica: MakeReplica
) -> None:
    url = _migrated(private_postgres)
    replica = make_replica()
    with running_service(url, DATABASE_REPLICA_URLS=replica.url("catalog")) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            answer = await client.get("/items", headers={LSN: "yesterday"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["header", LSN]


async def test_a_replica_that_is_down_is_skipped_and_used_again_when_back(
    private_postgres: PostgresInstance, make_replica: MakeReplica
) -> None:
    url = _migrated(private_postgres)
    replica = make_replica(delay=DELAY)
    settings = {"DATABASE_REPLICA_URLS": replica.url("catalog")}
    with running_service(url, **settings) as service:
        async with _client(service) as client:
            assert await _stale_tokenless_read(client, within=10)

            replica.stop(mode="immediate")
            statuses = []
            for round_ in range(20):  # at once: before the poller notices, and after
                path, token = await _create(client, f"down{round_}")
                statuses.append((await client.get(path, headers={LSN: token})).status_code)
                statuses.append((await client.get("/items")).status_code)
            assert statuses == [200] * len(statuses)

            replica.start()
            assert await _stale_tokenless_read(client, within=15), "the replica is not used again"
        assert "Traceback" not in service.log()


# What the service logs when a replica goes out of use for its lag, and back.
IN_USE, LAGGING = "back in use", "lagging: reads go elsewhere"


def said(
    service: CatalogService, event: str, *, after: int | None = None
) -> Callable[[], Awaitable[bool]]:
    """A check: the service's latest word on its replica is `event` (IN_USE or LAGGING),
    or, with `after`, it has said `event` more than `after` times."""

    async def check() -> bool:
        log = service.log()
        if after is not None:
            return log.count(event) > after
        other = LAGGING if event == IN_USE else IN_USE
        return log.rfind(event) > log.rfind(other)

    return check


async def test_a_replica_lagging_past_the_bound_is_skipped(
    private_postgres: PostgresInstance, make_replica: MakeReplica
) -> None:
    """With REPLICA_MAX_LAG_SECONDS=1 and a replica 3 s behind: once the service sees it
    lagging past 1 s, even a tokenless read of the latest write is fresh; once the replica
    has caught up, it is back in use."""
    url = _migrated(private_postgres)
    replica = make_replica(delay=3.0)
    settings = {"DATABASE_REPLICA_URLS": replica.url("catalog"), "REPLICA_MAX_LAG_SECONDS": "1"}
    with running_service(url, **settings) as service:

        async def back_in_use() -> None:
            await asyncio.to_thread(replica.wait_for_replay)  # nothing earlier left to apply
            await eventually(said(service, IN_USE), what="the replica back in use, caught up")

        async with _client(service) as client:
            assert await _stale_tokenless_read(client, within=10)  # in use while caught up
            statuses = []
            for round_ in range(3):
                await back_in_use()
                lagging = service.log().count(LAGGING)
                path, _ = await _create(client, f"lagging{round_}")
                # Said 1 s after the write, 2 s before the replica applies it; with the
                # default bound (5 s) it never would be.
                await eventually(
                    said(service, LAGGING, after=lagging),
                    what="the service taking the replica out of use, 1 s behind",
                )
                statuses.append((await client.get(path)).status_code)
            await back_in_use()
            # Back in use, in deed too: reads come from it again.
            assert await _stale_tokenless_read(client, within=10), "the replica is not used again"
    assert statuses == [200] * 3  # fresh: the primary served them
