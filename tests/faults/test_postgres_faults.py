"""The fault suite: a real service under load while its PostgreSQL server is broken.

A private PostgreSQL server (never the shared one) and `catalog serve` in a process of its
own; concurrent clients write items and read them back while the server is stopped,
killed, frozen, has its connections terminated or a table locked, and while the service
itself restarts. Whatever happens: no acknowledged write is lost, nothing but 2xx and 503
(with Retry-After) is answered, no request outlives the configured bounds, and the service
recovers by itself, with no error after recovery.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import psycopg
import pytest
from deploy.postgres import PostgresInstance

from catalog.migrations.runner import upgrade
from tests.conftest import make_settings
from tests.faults.harness import (
    LATENCY_BOUND,
    CatalogService,
    Load,
    lost_writes,
    running_service,
    unhandled_errors,
    wait_for_success,
)
from tests.waiting import eventually

pytestmark = pytest.mark.slow
WARMUP, AFTER, RECOVERY_BOUND = 1.0, 3.0, 15.0
# Once a write succeeds again, requests that were already waiting for a connection made
# during the outage finish within the connect and pool timeouts (1 s each): from then on,
# every request must succeed.
SETTLE = 2.0


@pytest.fixture
def database_url(private_postgres: PostgresInstance) -> str:
    """A migrated database on the test's own server."""
    url = private_postgres.create_database("catalog")
    upgrade(make_settings(url))
    return url


@pytest.fixture
def service(database_url: str) -> Iterator[CatalogService]:
    with running_service(database_url) as running:
        yield running


Fault = Callable[[], Awaitable[None]]


async def _report(
    name: str,
    service: CatalogService,
    database_url: str,
    fault: Fault,
    *,
    clients_see_it: bool = True,
) -> dict[str, object]:
    """Run `fault` under load; assert the invariants; the figures.

    With `clients_see_it`, some request made during the fault must have failed (503 or no
    answer): a fault that did nothing would otherwise pass every check here.
    """
    load = await Load.signed_up(service.url)
    async with load.running():
        await asyncio.sleep(WARMUP)
        fault_started = time.monotonic()
        await fault()
        fault_ended = time.monotonic()
        recovery = await wait_for_success(service.url, load.token, RECOVERY_BOUND)
        recovered = time.monotonic()
        await asyncio.sleep(AFTER)
    before = [a for a in load.answers if a.started + a.elapsed < fault_started]
    during = load.between(fault_started, recovered)
    after = load.between(recovered + SETTLE, float("inf"))  # requests sent after recovery
    worst = max(a.elapsed for a in load.answers)

    assert set(load.statuses()) <= {200, 201, 503}, (
        load.statuses(),
        unhandled_errors(service.log()),
    )
    assert all(a.retry_after == "1" for a in load.answers if a.status == 503)
    assert set(load.statuses(before)) <= {200, 201}
    if clients_see_it:
        failed = [a for a in during if a.status not in (200, 201)]
        assert failed, (
            f"{name}: every request made during the fault succeeded, so the fault was never "
            f"observed and this test proves nothing: {load.statuses(during)}"
        )
    assert after
    late = {(a.kind, a.error, round(a.started - recovered, 2)) for a in after if a.status == 503}
    assert set(load.statuses(after)) <= {200, 201}, (load.statuses(after), sorted(late)[:10])
    assert worst <= LATENCY_BOUND, worst
    assert lost_writes(database_url, load) == []
    figures = {
        "fault": name,
        "fault lasted s": round(fault_ended - fault_started, 1),
        "first write after it s": round(recovery, 2),
        "during": load.statuses(during),
        "after": load.statuses(after),
        "writes acknowledged": len(load.acknowledged),
        "writes lost": 0,
        "slowest answer s": round(worst, 2),
    }
    print(figures)
    return figures


async def test_postgresql_stopped_immediately(
    service: CatalogService, database_url: str, private_postgres: PostgresInstance
) -> None:
    async def fault() -> None:
        await asyncio.to_thread(private_postgres.stop, "immediate")
        await asyncio.sleep(2)
        await asyncio.to_thread(private_postgres.start)

    await _report("stop -m immediate", service, database_url, fault)


async def test_postmaster_killed(
    service: CatalogService, database_url: str, private_postgres: PostgresInstance
) -> None:
    async def fault() -> None:
        private_postgres.kill()  # SIGKILL: crash recovery at the next start
        await asyncio.sleep(2)
        await asyncio.to_thread(private_postgres.start)

    await _report("SIGKILL postmaster", service, database_url, fault)


async def test_postgresql_frozen(
    service: CatalogService, database_url: str, private_postgres: PostgresInstance
) -> None:
    probes: list[tuple[int, float]] = []

    async def fault() -> None:
        private_postgres.freeze()  # SIGSTOP: connections hang, nothing is refused
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            for _ in range(3):  # the readiness probe keeps its own 2 s bound meanwhile
                started = time.monotonic()
                ready = await client.get("/health/ready")
                probes.append((ready.status_code, time.monotonic() - started))
        await asyncio.sleep(max(0.0, 5 - sum(took for _, took in probes)))
        private_postgres.thaw()

    figures = await _report("SIGSTOP for 5 s", service, database_url, fault)
    assert figures["during"]
    assert [status for status, _ in probes] == [503] * 3
    assert max(took for _, took in probes) < 2.5, probes


async def test_backends_terminated(
    service: CatalogService, database_url: str, private_postgres: PostgresInstance
) -> None:
    terminated: list[int] = []

    async def fault() -> None:
        for _ in range(3):
            ended = await asyncio.to_thread(private_postgres.terminate_backends, "catalog")
            terminated.append(ended)
            await asyncio.sleep(0.5)

    # The service replaces connections the server closed without failing a request (see
    # tests/api/test_outages.py), so the fault shows in the server, not in the answers.
    await _report("pg_terminate_backend x3", service, database_url, fault, clients_see_it=False)
    assert all(terminated), f"a round found no service connection to terminate: {terminated}"


async def test_items_table_locked(service: CatalogService, database_url: str) -> None:
    async def fault() -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as holder:
            await holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            await asyncio.sleep(3)

    await _report("items locked for 3 s", service, database_url, fault)


async def test_service_restarted_under_load(database_url: str) -> None:
    """SIGTERM: in-flight requests finish, the process exits within its bound, a new one
    takes over on the same port. While none listens, clients are refused (no HTTP answer)."""
    first = CatalogService(database_url)
    second: CatalogService | None = None
    try:
        first.start()  # may move to another port if its first one was taken meanwhile
        second = CatalogService(database_url, port=first.port)
        load = await Load.signed_up(first.url)
        async with load.running():
            await asyncio.sleep(WARMUP)
            exit_took = await asyncio.to_thread(first.terminate)
            await asyncio.to_thread(second.start)
            await asyncio.sleep(AFTER)
        assert exit_took <= 3 + 2  # SHUTDOWN_TIMEOUT + slack
        assert set(load.statuses()) <= {200, 201, 503, None}, load.statuses()
        assert lost_writes(database_url, load) == []
        restarted = max(a.started for a in load.answers if a.status is None)
        after = load.between(restarted + 1, float("inf"))
        assert after
        assert set(load.statuses(after)) <= {200, 201}
        print(
            {
                "fault": "service SIGTERM + restart",
                "exit took s": round(exit_took, 2),
                "statuses": load.statuses(),
                "writes acknowledged": len(load.acknowledged),
                "writes lost": 0,
            }
        )
    finally:
        first.close()
        if second is not None:
            second.close()


async def test_shutdown_is_bounded_even_with_requests_stuck_on_a_lock(database_url: str) -> None:
    """Every database timeout off: writes wait on a lock for as long as it is held. SIGTERM
    still ends the process within SHUTDOWN_TIMEOUT, and the writes it cut off roll back."""
    unbounded = {"DB_LOCK_TIMEOUT_MS": "0", "DB_STATEMENT_TIMEOUT_MS": "0", "REQUEST_TIMEOUT": "60"}
    with running_service(database_url, SHUTDOWN_TIMEOUT="2", **unbounded) as service:
        load = await Load.signed_up(service.url)
        headers = {"Authorization": f"Bearer {load.token}"}
        async with await psycopg.AsyncConnection.connect(database_url) as holder:
            await holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=30) as c:
                stuck = [
                    asyncio.create_task(c.post("/items", json={"name": f"stuck{i}", "price": 1}))
                    for i in range(5)
                ]
                # All five are inside the database, waiting for the lock.
                await eventually(lock_waiters(database_url, 5), what="5 writes waiting")
                exit_took = await asyncio.to_thread(service.terminate)
                outcomes = await asyncio.gather(*stuck, return_exceptions=True)
            await holder.rollback()
    assert exit_took <= 2 + 3, exit_took
    acknowledged = [o for o in outcomes if isinstance(o, httpx.Response) and o.status_code < 500]
    assert acknowledged == [], outcomes
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)


async def test_the_service_starts_while_postgresql_is_down(
    database_url: str, private_postgres: PostgresInstance
) -> None:
    private_postgres.stop()
    with running_service(database_url) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            assert (await client.get("/health")).status_code == 200
            down = await client.get("/items")
            ready = await client.get("/health/ready")
            assert (down.status_code, ready.status_code) == (503, 503)
            assert down.headers["retry-after"] == "1"
            await asyncio.to_thread(private_postgres.start)
            up = await client.get("/items")
            assert up.status_code == 200  # without restarting the service
            assert (await client.get("/health/ready")).status_code == 200


async def test_abandoned_writes_do_not_commit_later(
    service: CatalogService, database_url: str
) -> None:
    """10 clients give up on writes stuck behind a lock (their connections close): the
    writes are cancelled with them and nothing lands once the lock is released."""
    load = await Load.signed_up(service.url)
    headers = {"Authorization": f"Bearer {load.token}"}
    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=60) as client:
            writes = [
                asyncio.create_task(
                    client.post("/items", json={"name": f"abandoned{n}", "price": 1})
                )
                for n in range(10)
            ]
            # Every write is inside the database, waiting for the lock...
            await eventually(lock_waiters(database_url, 10), what="10 writes waiting")
            for write in writes:  # ...when its client gives up (its connection closes)
                write.cancel()
            await asyncio.gather(*writes, return_exceptions=True)
        # The service cancels them: their lock waits end while the lock is still held.
        await eventually(lock_waiters(database_url, 0, exactly=True), what="no write waiting")
        await holder.rollback()  # the lock goes
    # Nothing in flight that could still land.
    await eventually(lock_waiters(database_url, 0, exactly=True, busy=True), what="all idle")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)


def lock_waiters(
    url: str, count: int, *, exactly: bool = False, busy: bool = False
) -> Callable[[], Awaitable[bool]]:
    """A check: `count` (at least, or `exactly`) other backends of the database wait for a
    lock (or, `busy`, run a statement or hold a transaction open)."""
    condition = "state <> 'idle'" if busy else "wait_event_type = 'Lock'"

    async def check() -> bool:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as observer:
            cursor = await observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                f"AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND {condition}"
            )
            row = await cursor.fetchone()
        found = row[0] if row else 0
        return found == count if exactly else found >= count

    return check
