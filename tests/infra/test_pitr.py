"""Point-in-time recovery with pgBackRest: WAL archived continuously, restored to a moment T.

A private server archives every WAL segment into a pgBackRest repository and has a full
base backup. Eight clients write through `catalog serve`; at T a named restore point is
written (`pg_create_restore_point`, the exact way to name a moment in the WAL); the
clients keep writing. A new private server is then restored to T. It must hold every
write acknowledged before T and none sent after T (a write in flight across T may go
either way: its commit is before or after the restore point).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
import psycopg
from deploy.pgbackrest import PGBACKREST_BIN, BackRestRepository
from deploy.postgres import PostgresInstance

from catalog.migrations.runner import upgrade
from tests.conftest import make_settings
from tests.faults.harness import running_service
from tests.infra.fixtures import require_binaries, start_service

CLIENTS = 8
RESTORE_POINT = "catalog-pitr-test"


@dataclass
class Write:
    sent: float
    acknowledged: float | None = None


@dataclass
class TimedWrites:
    """Clients creating items; each write's send and acknowledgement times, by name."""

    base_url: str
    token: str
    writes: dict[str, Write] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, number: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30) as http:
            sequence = 0
            while not self.stop.is_set():
                sequence += 1
                name = f"p{number}-{sequence}"
                write = self.writes[name] = Write(time.monotonic())
                try:
                    response = await http.post("/items", json={"name": name, "price": 1})
                except httpx.TransportError:
                    continue
                if response.status_code == 201:
                    write.acknowledged = time.monotonic()

    def acknowledged(self) -> int:
        return sum(1 for w in self.writes.values() if w.acknowledged is not None)

    async def wait_for(self, count: int, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while self.acknowledged() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.acknowledged()} writes acknowledged")
            await asyncio.sleep(0.05)


async def _token(base_url: str) -> str:
    account = {"email": "pitr@example.com", "password": "pitr-pass-1"}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        assert (await http.post("/users", json=account)).status_code == 201
        login = {"username": account["email"], "password": account["password"]}
        return str((await http.post("/auth/token", data=login)).json()["access_token"])


def test_a_restore_to_a_named_point_holds_exactly_the_writes_before_it() -> None:
    require_binaries(PGBACKREST_BIN)
    with ExitStack() as stack:
        repository = BackRestRepository()
        stack.callback(repository.close)
        primary = PostgresInstance("pitr-primary", settings=repository.archive_settings())
        repository.attach([(primary.data_dir, primary.port, primary.base_dir)])
        start_service(primary, stack)
        repository.create_stanza()
        repository.backup("full")
        url = primary.create_database("catalog")
        upgrade(make_settings(url))
        service = stack.enter_context(running_service(url))
        token = asyncio.run(_token(service.url))

        async def scenario() -> tuple[TimedWrites, float, float, str]:
            load = TimedWrites(service.url, token)
            tasks = [asyncio.create_task(load.client(n)) for n in range(CLIENTS)]
            try:
                await load.wait_for(200)
                before_t = time.monotonic()
                lsn = await asyncio.to_thread(
                    primary.scalar, "SELECT pg_create_restore_point(%s)::text", (RESTORE_POINT,)
                )
                after_t = time.monotonic()
                await load.wait_for(load.acknowledged() + 200)  # keep writing past T
            finally:
                load.stop.set()
                await asyncio.gather(*tasks)
            return load, before_t, after_t, str(lsn)

        load, before_t, after_t, restore_lsn = asyncio.run(scenario())
        # Close the segment holding the restore point, so it is archived, and wait for it.
        repository.command("check")
        restored, recovery_seconds = repository.restore_instance(
            "pitr-restored", target_name=RESTORE_POINT
        )
        stack.callback(restored.close)
        with psycopg.connect(restored.url("catalog"), connect_timeout=5) as conn:
            names = {name for (name,) in conn.execute("SELECT name FROM items").fetchall()}

    acknowledged_before = {
        n
        for n, w in load.writes.items()
        if w.acknowledged is not None and w.acknowledged < before_t
    }
    sent_after = {n for n, w in load.writes.items() if w.sent > after_t}
    in_flight = set(load.writes) - acknowledged_before - sent_after
    lost = acknowledged_before - names
    from_after_t = names & sent_after
    assert lost == set()
    assert from_after_t == set()
    assert names <= set(load.writes)
    total = load.acknowledged()
    print(
        f"PITR to restore point at LSN {restore_lsn}: {len(acknowledged_before)} writes "
        f"acknowledged before T, all restored; {len(names & in_flight)} of {len(in_flight)} "
        f"in flight at T restored; 0 of {len(sent_after)} sent after T; {total} acknowledged "
        f"in all; recovery time {recovery_seconds:.1f} s (pgbackrest restore + replay + "
        "promote)"
    )
    assert len(names) < total
