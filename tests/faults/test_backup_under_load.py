"""A backup taken while 8 clients write through `catalog serve`, restored into a fresh database.

The restored data must be the data as of one moment after the backup began: every write
acknowledged before the backup started is there with all its tag links, and every item
that is there (acknowledged later, or in flight) is whole: its tag links are exactly
the ones it was created with. Both databases.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from catalog.db.engine import create_sync_engine
from catalog.migrations.runner import upgrade
from tests.backup.helpers import catalog, ok
from tests.conftest import make_settings, throwaway_database
from tests.faults.harness import running_service

CLIENTS = 8


class TaggedWrites:
    """Clients creating items with two tags each, remembering what they sent and what was
    acknowledged (201), in order."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.sent: dict[str, set[str]] = {}
        self.acknowledged: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def client(self, number: int) -> None:
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=30
        ) as http:
            sequence = 0
            while not self.stop.is_set():
                sequence += 1
                name = f"w{number}-{sequence}"
                tags = {f"client-{number}", f"round-{sequence % 7}"}
                self.sent[name] = tags
                body = {"name": name, "price": 1, "tags": sorted(tags)}
                try:
                    response = await http.post("/items", json=body)
                except httpx.TransportError:
                    continue
                if response.status_code == 201:
                    self.acknowledged[name] = response.json()["id"]

    async def wait_for(self, count: int, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while len(self.acknowledged) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.acknowledged)} writes acknowledged")
            await asyncio.sleep(0.05)


async def _sign_up(base_url: str) -> str:
    account = {"email": "backup-load@example.com", "password": "load-pass-1"}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        assert (await http.post("/users", json=account)).status_code == 201
        login = {"username": account["email"], "password": account["password"]}
        return str((await http.post("/auth/token", data=login)).json()["access_token"])


def _items_with_tags(url: str) -> dict[str, tuple[int, set[str]]]:
    engine = create_sync_engine(make_settings(url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT items.id, items.name, tags.name FROM items "
                    "JOIN users ON users.id = items.owner_id "
                    "LEFT JOIN item_tags ON item_tags.item_id = items.id "
                    "LEFT JOIN tags ON tags.id = item_tags.tag_id "
                    "WHERE users.email = 'backup-load@example.com'"
                )
            ).all()
    finally:
        engine.dispose()
    found: dict[str, tuple[int, set[str]]] = {}
    for item_id, name, tag in rows:
        found.setdefault(name, (item_id, set()))[1].update({tag} if tag else set())
    return found


def test_a_backup_under_write_load_restores_a_consistent_snapshot(
    backend: str, tmp_path: Path
) -> None:
    with (
        throwaway_database(backend, tmp_path) as source_url,
        throwaway_database(backend, tmp_path) as restored_url,
    ):
        upgrade(make_settings(source_url))
        # Enough data that the copy takes a while, with the writers going all along.
        ok(catalog(source_url, "seed", "--users", "20", "--tags", "20", "--items", "20000"))
        with running_service(source_url) as service:
            token = asyncio.run(_sign_up(service.url))

            async def scenario() -> tuple[TaggedWrites, dict[str, int], int]:
                writes = TaggedWrites(service.url, token)
                tasks = [asyncio.create_task(writes.client(n)) for n in range(CLIENTS)]
                try:
                    await writes.wait_for(100)
                    before = dict(writes.acknowledged)  # acknowledged before the backup began
                    result = await asyncio.to_thread(
                        catalog, source_url, "db", "backup", "--to", str(tmp_path / "b.bak")
                    )
                    ok(result)
                    during = len(writes.acknowledged) - len(before)
                    await writes.wait_for(len(writes.acknowledged) + 50)  # still writing after
                finally:
                    writes.stop.set()
                    await asyncio.gather(*tasks)
                return writes, before, during

            writes, before, during = asyncio.run(scenario())
        ok(catalog(restored_url, "db", "restore", str(tmp_path / "b.bak"), "--into", restored_url))
        restored = _items_with_tags(restored_url)
        source = _items_with_tags(source_url)
    # Every write acknowledged before the backup began is there, whole, under its id.
    lost = {name for name, item_id in before.items() if restored.get(name, (0,))[0] != item_id}
    assert lost == set()
    # Nothing half-written: each item restored has exactly the tags it was created with,
    # and is the item the service holds (same id, same tags).
    torn = {name: tags for name, (_, tags) in restored.items() if tags != writes.sent[name]}
    assert torn == {}
    assert all(source[name] == item for name, item in restored.items())
    # A snapshot, not the end state: the writes after it are not in the backup.
    assert len(before) <= len(restored) < len(source)
    print(
        f"{backend}: {len(before)} writes acknowledged before the backup, {during} during it; "
        f"{len(restored)} restored, {len(source)} in the service at the end"
    )
