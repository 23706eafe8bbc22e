"""`UnitOfWork.fetch_beside`: two independent reads at once (a list's count beside its page).

Concurrency is shown by state, not by time: each read waits on an advisory lock the test
holds, and both are seen waiting in pg_stat_activity together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import sqlalchemy.exc
from sqlalchemy import Connection, Engine, text

from catalog.config import Settings
from catalog.db.compiled import CompiledQuery
from catalog.db.database import Database
from catalog.db.engine import create_sync_engine
from catalog.models import Tag
from tests.conftest import postgresql_only
from tests.test_db import checked_out
from tests.waiting import eventually, lock_waiters

ASIDE_KEY, MAIN_KEY = 7_201, 7_202
NO_TABLE = CompiledQuery(text("SELECT name FROM no_such_table"))
TAGS = CompiledQuery(text("SELECT name FROM tags ORDER BY name"))
ONE = CompiledQuery(text("SELECT 1 AS n"))
LOCK_BOTH = text(f"SELECT pg_advisory_lock({ASIDE_KEY}), pg_advisory_lock({MAIN_KEY})")


def waits_for(key: int, label: str) -> CompiledQuery:
    """A read answering `label` once it gets advisory lock `key` (shared; outside a
    transaction it is held for the statement only)."""
    return CompiledQuery(
        text(f"SELECT '{label}' AS which FROM (SELECT pg_advisory_xact_lock_shared({key})) AS w")
    )


@pytest.fixture
def sync_engine(settings: Settings) -> Iterator[Engine]:
    engine = create_sync_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def holder(sync_engine: Engine) -> Iterator[Connection]:
    """A connection of the test's own, holding both advisory locks exclusively."""
    with sync_engine.connect() as connection:
        connection.execute(LOCK_BOTH)
        connection.commit()
        try:
            yield connection
        finally:
            connection.execute(text("SELECT pg_advisory_unlock_all()"))
            connection.commit()


async def waiting(sync_engine: Engine, count: int, what: str, running: str = "") -> None:
    """Until exactly `count` other backends wait for a lock, all running a statement that
    contains `running` (fails if never)."""

    def waiters() -> list[str]:
        with sync_engine.connect() as watcher:
            return [query for _, query in lock_waiters(watcher)]

    async def reached() -> bool:
        queries = await asyncio.to_thread(waiters)
        return len(queries) == count and all(running in query for query in queries)

    await eventually(reached, what=what)


@postgresql_only
async def test_both_reads_run_at_once(
    database: Database, sync_engine: Engine, holder: Connection
) -> None:
    uow = database.unit_of_work(reads_only=True)
    both = asyncio.ensure_future(
        uow.fetch_beside(waits_for(ASIDE_KEY, "aside"), {}, waits_for(MAIN_KEY, "main"), {})
    )
    # Run one after the other, only the first would be waiting.
    await waiting(sync_engine, 2, "both reads waiting on their locks at once")
    holder.execute(text("SELECT pg_advisory_unlock_all()"))
    holder.commit()
    aside, main = await both
    assert ([r["which"] for r in aside], [r["which"] for r in main]) == (["aside"], ["main"])
    assert checked_out(database.engine) == 0


@postgresql_only
async def test_without_a_spare_connection_the_reads_run_in_turn(
    settings: Settings, sync_engine: Engine, holder: Connection
) -> None:
    one = Database.from_settings(settings.model_copy(update={"db_pool_size": 1}))
    try:
        uow = one.unit_of_work(reads_only=True)
        both = asyncio.ensure_future(
            uow.fetch_beside(waits_for(ASIDE_KEY, "aside"), {}, waits_for(MAIN_KEY, "main"), {})
        )
        await waiting(sync_engine, 1, "the read aside waiting, alone", running=str(ASIDE_KEY))
        holder.execute(text(f"SELECT pg_advisory_unlock({ASIDE_KEY})"))
        holder.commit()
        await waiting(sync_engine, 1, "then the main read waiting, alone", running=str(MAIN_KEY))
        holder.execute(text(f"SELECT pg_advisory_unlock({MAIN_KEY})"))
        holder.commit()
        aside, main = await both
        assert ([r["which"] for r in aside], [r["which"] for r in main]) == (["aside"], ["main"])
    finally:
        await one.dispose()


@postgresql_only
async def test_a_failing_main_read_ends_the_one_aside(
    database: Database, sync_engine: Engine, holder: Connection
) -> None:
    uow = database.unit_of_work(reads_only=True)
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="no_such_table"):
        await uow.fetch_beside(waits_for(ASIDE_KEY, "aside"), {}, NO_TABLE, {})
    # The count that was waiting is cancelled on the server; its connection goes back to
    # the pool once the cut-off exchange has settled, in the background (db/checkin.py).
    await waiting(sync_engine, 0, "no read left waiting")

    async def returned() -> bool:
        return checked_out(database.engine) == 0

    await eventually(returned, what="the connection of the cancelled read back in the pool")


async def test_a_failing_read_aside_raises_its_error(database: Database) -> None:
    uow = database.unit_of_work(reads_only=True)
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="no_such_table"):
        await uow.fetch_beside(NO_TABLE, {}, ONE, {})
    assert checked_out(database.engine) == 0


async def test_in_a_transaction_both_reads_see_its_writes(database: Database) -> None:
    async with database.unit_of_work() as uow:
        session = await uow.session()
        session.add(Tag(name="mine"))
        await session.flush()
        aside, main = await uow.fetch_beside(TAGS, {}, ONE, {})
        assert ([r["name"] for r in aside], [r["n"] for r in main]) == (["mine"], [1])
