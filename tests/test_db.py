"""The database layer: engines, SQLite pragmas, pools and the units of work (async and sync)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, bindparam, event, func, insert, literal, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from catalog.config import Settings
from catalog.db.compiled import CompiledQuery
from catalog.db.database import Database, SyncDatabase
from catalog.db.engine import create_async_db_engine, create_sync_engine
from catalog.migrations.runner import upgrade
from catalog.models import Item, Tag
from catalog.pagination import parse_sort
from catalog.services.item_filters import ItemFilters
from catalog.services.item_listing import (
    ITEM_SORT_FIELDS,
    ItemListQuery,
    Total,
    list_items,
)
from catalog.services.item_writes import (
    OneStatementItemWrites,
    StepwiseItemWrites,
    item_writes_for,
)
from tests.conftest import make_settings, postgresql_only, throwaway_database
from tests.waiting import eventually_sync


class Boom(Exception):
    """Raised by a test body to make a unit of work fail."""


@pytest.fixture
def sync_database(settings: Settings, database: Database) -> Iterator[SyncDatabase]:
    """The sync side of the same test database (`database` makes the tables get emptied)."""
    db = SyncDatabase.from_settings(settings)
    yield db
    db.dispose()


async def tag_names(database: Database) -> list[str]:
    """Tag names as a fresh session sees them: what was committed."""
    async with database.autocommit_session() as session:
        return list((await session.scalars(select(Tag.name).order_by(Tag.name))).all())


async def add_tags(database: Database, *names: str, then: Exception | None = None) -> None:
    """One unit of work inserting `names` (each flushed to the database), then raising `then`."""
    async with database.transaction() as session:
        for name in names:
            session.add(Tag(name=name))
            await session.flush()
        if then is not None:
            raise then


def sync_add_tags(
    scope: AbstractContextManager[Session], *names: str, then: Exception | None = None
) -> None:
    """As `add_tags`, in a sync session scope."""
    with scope as session:
        for name in names:
            session.add(Tag(name=name))
            session.flush()
        if then is not None:
            raise then


def checked_out(engine: Engine | AsyncEngine) -> int:
    """Connections currently lent out by the engine's pool."""
    return engine.pool.checkedout()  # type: ignore[attr-defined,no-any-return]


# --- the async unit of work -----------------------------------------------------------------


async def test_unit_of_work_commits_on_success(database: Database) -> None:
    async with database.transaction() as session:
        session.add(Tag(name="kept"))
    assert await tag_names(database) == ["kept"]
    assert checked_out(database.engine) == 0


async def test_unit_of_work_rolls_back_on_error(database: Database) -> None:
    with pytest.raises(Boom):
        await add_tags(database, "discarded", then=Boom())
    assert await tag_names(database) == []
    assert checked_out(database.engine) == 0


async def test_unit_of_work_reports_a_failing_commit(database: Database) -> None:
    """A commit that fails surfaces as an exception and leaves nothing behind."""

    async def write_with_failing_commit() -> None:
        async with database.transaction() as session:
            event.listen(session.sync_session, "before_commit", fail_commit)
            session.add(Tag(name="never-committed"))
            await session.flush()

    def fail_commit(session: Session) -> None:
        raise Boom

    with pytest.raises(Boom):
        await write_with_failing_commit()
    assert await tag_names(database) == []
    assert checked_out(database.engine) == 0


async def test_unit_of_work_rolls_back_on_integrity_error(database: Database) -> None:
    await add_tags(database, "taken")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        await add_tags(database, "other", "taken")
    assert await tag_names(database) == ["taken"]
    assert checked_out(database.engine) == 0


async def test_cancelled_unit_of_work_rolls_back_and_returns_its_connection(
    database: Database,
) -> None:
    """A request cancelled mid-transaction (client gone) must not leak a connection or lock."""
    inside = asyncio.Event()

    async def stuck_writer() -> None:
        async with database.transaction() as session:
            session.add(Tag(name="cancelled"))
            await session.flush()
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck_writer())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checked_out(database.engine) == 0
    # The write lock was released: another writer gets through.
    async with database.transaction() as session:
        session.add(Tag(name="after"))
    assert await tag_names(database) == ["after"]


async def test_objects_stay_usable_after_commit(database: Database) -> None:
    """expire_on_commit=False: reading attributes after the commit needs no lazy load."""
    async with database.transaction() as session:
        tag = Tag(name="loaded")
        session.add(tag)
    # With expiry, the first attribute access would need IO: MissingGreenlet in async code.
    assert sa_inspect(tag).expired_attributes == set()
    assert tag.name == "loaded"
    assert isinstance(tag.id, int)


async def test_read_session_runs_outside_a_transaction(database: Database) -> None:
    """A read sends no BEGIN: each statement is its own (autocommit) transaction."""
    assert await _runs_in_transaction(database.autocommit_session()) is False
    # The same probe sees the write session's transaction, so it can tell the difference.
    assert await _runs_in_transaction(database.transaction()) is True
    assert checked_out(database.engine) == 0


async def _runs_in_transaction(sessions: Any) -> bool:
    session: AsyncSession
    async with sessions as session:
        if session.bind.dialect.name == "postgresql":
            # Assign a transaction id, then ask for it in the next statement: only a
            # transaction spanning both statements still has one.
            await session.execute(text("SELECT txid_current()"))
            xid = await session.scalar(text("SELECT txid_current_if_assigned()"))
            return xid is not None
        await session.execute(text("SELECT count(*) FROM tags"))
        raw = await (await session.connection()).get_raw_connection()
        return bool(raw.driver_connection.in_transaction)  # type: ignore[union-attr]


async def test_read_session_sees_committed_writes(database: Database) -> None:
    async with database.transaction() as session:
        session.add(Tag(name="visible"))
    async with database.autocommit_session() as session:
        assert await session.scalar(select(func.count()).select_from(Tag)) == 1


# --- the sync unit of work ------------------------------------------------------------------


def _sync_tag_names(db: SyncDatabase) -> list[str]:
    with db.sessions() as session:
        return list(session.scalars(select(Tag.name).order_by(Tag.name)).all())


async def test_session_scope_commits_on_success(sync_database: SyncDatabase) -> None:
    with sync_database.session_scope() as session:
        session.add(Tag(name="kept"))
    assert _sync_tag_names(sync_database) == ["kept"]
    assert checked_out(sync_database.engine) == 0


async def test_session_scope_rolls_back_on_error(sync_database: SyncDatabase) -> None:
    with pytest.raises(Boom):
        sync_add_tags(sync_database.session_scope(), "discarded", then=Boom())
    assert _sync_tag_names(sync_database) == []
    assert checked_out(sync_database.engine) == 0


async def test_sync_and_async_engines_share_one_database(
    sync_database: SyncDatabase, database: Database
) -> None:
    with sync_database.session_scope() as session:
        session.add(Tag(name="from-sync"))
    assert await tag_names(database) == ["from-sync"]


# --- pools ----------------------------------------------------------------------------------

POOLED = {"db_pool_size": 3, "db_max_overflow": 4, "db_pool_timeout": 2.5, "db_pool_recycle": 60}


@pytest.mark.parametrize("create", [create_sync_engine, create_async_db_engine])
async def test_postgresql_pool_comes_from_settings(create: Any) -> None:
    # Creating an engine does not connect, so no server is needed.
    engine = create(make_settings("postgresql://u@127.0.0.1/catalog", **POOLED))
    pool = engine.pool
    assert (pool.size(), pool._max_overflow, pool._timeout, pool._recycle) == (3, 4, 2.5, 60)
    if isinstance(engine, AsyncEngine):
        await engine.dispose()
    else:
        engine.dispose()


async def test_postgresql_pool_limit_is_enforced(tmp_path: Path) -> None:
    """With 1 + 0 connections, a second checkout waits `db_pool_timeout` and then fails."""
    with throwaway_database("postgresql", tmp_path) as url:
        settings = make_settings(url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.1)
        engine = create_async_db_engine(settings)
        try:
            async with engine.connect():
                with pytest.raises(sqlalchemy.exc.TimeoutError):
                    async with engine.connect():
                        pass
        finally:
            await engine.dispose()


async def test_postgresql_url_with_sslmode_serves_both_engines(tmp_path: Path) -> None:
    """`?sslmode=` (libpq's spelling, as hosting providers hand it out) must not break asyncpg."""
    with throwaway_database("postgresql", tmp_path) as url:
        settings = make_settings(f"{url}?sslmode=disable")
        sync_engine = create_sync_engine(settings)
        async_engine = create_async_db_engine(settings)
        try:
            with sync_engine.connect() as connection:
                assert connection.execute(text("SELECT 1")).scalar() == 1
            async with async_engine.connect() as async_connection:
                assert (await async_connection.execute(text("SELECT 1"))).scalar() == 1
        finally:
            sync_engine.dispose()
            await async_engine.dispose()


@pytest.mark.parametrize(
    "options",
    [
        "command_timeout=3",  # asyncpg only: psycopg (CLI, migrations) would refuse it
        "connect_timeout=2&application_name=catalog-test",  # libpq only: asyncpg would
        "sslmode=disable&command_timeout=3&connect_timeout=2",
    ],
)
async def test_driver_specific_url_options_serve_both_engines(tmp_path: Path, options: str) -> None:
    with throwaway_database("postgresql", tmp_path) as url:
        settings = make_settings(f"{url}?{options}")
        upgrade(settings)  # migrations run on the sync engine
        sync_engine = create_sync_engine(settings)
        async_engine = create_async_db_engine(settings)
        try:
            with sync_engine.connect() as connection:
                assert connection.execute(text("SELECT 1")).scalar() == 1
            async with async_engine.connect() as async_connection:
                assert (await async_connection.execute(text("SELECT 1"))).scalar() == 1
                if "command_timeout" in options:
                    # The URL's own bound is the one in force, not the settings' default.
                    raw = await async_connection.get_raw_connection()
                    driver: Any = raw.driver_connection
                    assert driver._config.command_timeout == 3
        finally:
            sync_engine.dispose()
            await async_engine.dispose()


# --- SQLite configured for a service ------------------------------------------------------


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """A migrated SQLite database of its own; the busy timeout is recognisable, and long
    enough that a loaded CI machine cannot turn waiting writers into "database is locked"."""
    settings = make_settings(f"sqlite:///{tmp_path / 'own.db'}", sqlite_busy_timeout_ms=31_234)
    upgrade(settings)
    return settings


@pytest.fixture
async def sqlite_database(sqlite_settings: Settings) -> AsyncIterator[Database]:
    db = Database.from_settings(sqlite_settings)
    yield db
    await db.dispose()


@pytest.fixture
def sqlite_sync_database(sqlite_settings: Settings) -> Iterator[SyncDatabase]:
    db = SyncDatabase.from_settings(sqlite_settings)
    yield db
    db.dispose()


PRAGMAS = {
    "foreign_keys": 1,
    "journal_mode": "wal",
    "busy_timeout": 31_234,
    "mmap_size": 1024 * 2**20,  # SQLITE_MMAP_MB's default
}


def test_sqlite_pragmas_on_the_sync_engine(sqlite_sync_database: SyncDatabase) -> None:
    with sqlite_sync_database.engine.connect() as connection:
        found = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in PRAGMAS}
    assert found == PRAGMAS


async def test_sqlite_pragmas_on_the_async_engine(sqlite_database: Database) -> None:
    for sessions in (sqlite_database.autocommit_session, sqlite_database.transaction):
        async with sessions() as session:
            connection = await session.connection()
            found = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in PRAGMAS
            }
        assert found == PRAGMAS


async def test_sqlite_enforces_foreign_keys(
    sqlite_database: Database, sqlite_sync_database: SyncDatabase
) -> None:
    orphan = {"name": "orphan", "price": 1, "owner_id": 999}
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with sqlite_database.transaction() as session:
            session.add(Item(**orphan))
    with pytest.raises(sqlalchemy.exc.IntegrityError), sqlite_sync_database.session_scope() as s:
        s.add(Item(**orphan))


def _insert_tags_after_reading(db: SyncDatabase, prefix: str, count: int) -> None:
    """Read, then write, in one transaction: the pattern that deadlocks a deferred BEGIN."""
    for n in range(count):
        with db.session_scope() as session:
            session.scalar(select(func.count()).select_from(Tag))
            session.add(Tag(name=f"{prefix}-{n}"))


def test_sqlite_concurrent_sync_writers_all_succeed(sqlite_sync_database: SyncDatabase) -> None:
    threads, per_thread = 8, 25
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            _insert_tags_after_reading(sqlite_sync_database, f"t{index}", per_thread)
        except BaseException as error:  # collected: a thread's exception would be lost
            errors.append(error)

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    with sqlite_sync_database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Tag)) == threads * per_thread


async def test_sqlite_concurrent_async_writers_all_succeed(sqlite_database: Database) -> None:
    tasks = 20

    async def writer(index: int) -> None:
        async with sqlite_database.transaction() as session:
            await session.scalar(select(func.count()).select_from(Tag))
            session.add(Tag(name=f"task-{index}"))

    results = await asyncio.gather(*(writer(i) for i in range(tasks)), return_exceptions=True)
    assert [r for r in results if r is not None] == []
    assert len(await tag_names(sqlite_database)) == tasks
    assert checked_out(sqlite_database.engine) == 0


def test_sqlite_writer_waits_for_the_lock_holder(sqlite_settings: Settings) -> None:
    """A writer blocked by another one waits (busy timeout) instead of failing at once."""
    holder = create_sync_engine(sqlite_settings)
    waiter = SyncDatabase(create_sync_engine(sqlite_settings))
    impatient = SyncDatabase(
        create_sync_engine(sqlite_settings.model_copy(update={"sqlite_busy_timeout_ms": 0}))
    )
    try:
        with holder.connect() as locked:
            locked.execute(text("INSERT INTO tags (name) VALUES ('holder')"))  # BEGIN IMMEDIATE
            # Without a busy timeout the second writer fails: the lock really is held.
            with pytest.raises(sqlalchemy.exc.OperationalError, match="locked"):
                _insert_tags_after_reading(impatient, "impatient", 1)
            release = threading.Timer(0.2, locked.commit)
            release.start()
            _insert_tags_after_reading(waiter, "waiter", 1)
            release.join()
        with waiter.sessions() as session:
            names = session.scalars(select(Tag.name).order_by(Tag.name)).all()
        assert names == ["holder", "waiter-0"]
    finally:
        holder.dispose()
        waiter.dispose()
        impatient.dispose()


# --- the request-scoped unit of work ----------------------------------------------------------

_TAG_NAMES = CompiledQuery(select(Tag.name).order_by(Tag.name))
_NEW_TAG = CompiledQuery(insert(Tag).values(name=bindparam("name")).returning(Tag.id))


async def test_unit_of_work_reads_outside_a_transaction_until_it_writes(
    database: Database,
) -> None:
    async with database.unit_of_work() as uow:
        assert await uow.fetch_all(_TAG_NAMES) == []
        assert not uow.in_transaction  # a read opens nothing
        session = await uow.session()
        session.add(Tag(name="mine"))
        await session.flush()
        assert uow.in_transaction
        # From now on reads run in the transaction and see its uncommitted writes...
        assert [row["name"] for row in await uow.fetch_all(_TAG_NAMES)] == ["mine"]
        # ...which nobody else sees yet.
        assert await tag_names(database) == []
    assert await tag_names(database) == ["mine"]
    assert checked_out(database.engine) == 0


async def test_unit_of_work_rolls_back_everything_on_error(database: Database) -> None:
    async def fail_after_two_writes() -> None:
        async with database.unit_of_work() as uow:
            await uow.write(_NEW_TAG, name="first")
            session = await uow.session()
            session.add(Tag(name="second"))
            await session.flush()
            raise Boom

    with pytest.raises(Boom):
        await fail_after_two_writes()
    # The first write committed on its own only where single statements autocommit.
    expected = ["first"] if database.backend.autocommit_writes else []
    assert await tag_names(database) == expected
    assert checked_out(database.engine) == 0


async def test_a_single_statement_write_commits_on_its_own_where_the_backend_allows(
    database: Database,
) -> None:
    async with database.unit_of_work() as uow:
        row = await uow.write(_NEW_TAG, name="at-once")
        assert row is not None
        visible_before_the_end = await tag_names(database) == ["at-once"]
        assert uow.in_transaction is not database.backend.autocommit_writes
    assert visible_before_the_end is database.backend.autocommit_writes
    assert await tag_names(database) == ["at-once"]


async def test_a_write_after_a_transaction_opened_joins_it(database: Database) -> None:
    async def fail_in_a_transaction() -> None:
        async with database.unit_of_work() as uow:
            await uow.session()
            await uow.write(_NEW_TAG, name="joined")
            raise Boom

    with pytest.raises(Boom):
        await fail_in_a_transaction()
    assert await tag_names(database) == []


async def test_each_backend_strategy_is_built_once(database: Database) -> None:
    writes = database.strategy(item_writes_for)
    assert database.strategy(item_writes_for) is writes
    async with database.unit_of_work() as uow:
        assert uow.strategy(item_writes_for) is writes
    expected = OneStatementItemWrites if database.backend.writable_ctes else StepwiseItemWrites
    assert type(writes) is expected


async def test_a_commit_under_way_finishes_even_if_the_caller_is_cancelled(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling a request (client gone, deadline) rolls its work back unless the commit
    had started: a commit is never abandoned half-sent."""
    committing, proceed = asyncio.Event(), asyncio.Event()
    real_commit = AsyncSession.commit

    async def slow_commit(self: AsyncSession) -> None:
        committing.set()
        await proceed.wait()  # the commit is under way until the caller was cancelled
        await real_commit(self)

    monkeypatch.setattr(AsyncSession, "commit", slow_commit)

    async def write() -> None:
        async with database.unit_of_work() as uow:
            session = await uow.session()
            session.add(Tag(name="committed"))
            await session.flush()

    task = asyncio.create_task(write())
    await committing.wait()
    task.cancel()
    proceed.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.undo()
    assert await tag_names(database) == ["committed"]
    assert checked_out(database.engine) == 0


async def test_a_reading_unit_of_work_refuses_to_write(database: Database) -> None:
    """A GET's unit of work has no exit step, so it must never open a transaction."""
    uow = database.unit_of_work(reads_only=True)
    rows = await uow.fetch_all(CompiledQuery(select(literal(1).label("one"))))
    assert rows[0]["one"] == 1
    with pytest.raises(RuntimeError, match="only reads"):
        await uow.session()
    with pytest.raises(RuntimeError, match="only reads"):
        await uow.write(CompiledQuery(select(literal(1).label("one"))))
    assert not uow.in_transaction


# --- settings of the engines: DB_POOL_PRE_PING, DB_ECHO ---------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("pre_ping", [True, False])
async def test_db_pool_pre_ping_replaces_a_dead_connection_before_use(
    database_url: str, pre_ping: bool
) -> None:
    """DB_POOL_PRE_PING=true: a pooled connection the server closed is replaced at checkout,
    so the statement runs; without it that statement meets the dead connection and fails
    (the service then answers 503 or retries, but the engine itself does not hide it)."""
    import psycopg

    from tests.api.test_outages import _running

    database = Database.from_settings(
        make_settings(database_url, db_pool_size=1, db_pool_pre_ping=pre_ping)
    )
    try:
        async with database.engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

            def gone() -> bool:
                rows = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
                return rows.fetchone() is None and not _running(pid)

            eventually_sync(gone, what="the pooled connection's backend gone")

        async def one_statement() -> int:
            async with database.engine.connect() as connection:
                return int((await connection.execute(text("SELECT 42"))).scalar_one())

        if pre_ping:
            assert await one_statement() == 42
        else:
            with pytest.raises(sqlalchemy.exc.DBAPIError):
                await one_statement()
    finally:
        await database.dispose()


@pytest.mark.parametrize("echo", [True, False])
async def test_db_echo_logs_every_statement(
    database_url: str, echo: bool, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database.from_settings(make_settings(database_url, db_echo=echo))
    try:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 42 AS echoed_statement"))
    finally:
        await database.dispose()
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert any("echoed_statement" in message for message in logged) is echo, logged


_PLANS = text(
    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
    " WHERE statement LIKE '%count(*)%' AND statement NOT LIKE '%pg_prepared_statements%'"
)


@postgresql_only
async def test_a_capped_count_is_planned_for_its_values_every_time(settings: Settings) -> None:
    """PostgreSQL would switch a cached statement to a generic plan after five runs; the
    capped count must never run one (its cost depends on how many rows its values match)."""
    one_connection = make_settings(settings.database_url, db_pool_size=1, db_max_overflow=0)
    database = Database.from_settings(one_connection)
    query = ItemListQuery(
        ItemFilters(min_price=Decimal("1"), max_price=Decimal("2")),
        parse_sort("id", ITEM_SORT_FIELDS),
        limit=5,
        with_total=True,
    )
    try:
        for _ in range(8):
            async with database.unit_of_work() as uow:
                page = await list_items(uow, query)
                assert page.total == Total(0)
        async with database.engine.connect() as connection:  # the pool's only connection
            plans = (await connection.execute(_PLANS)).all()
    finally:
        await database.dispose()
    # The counts ran on this connection (8 totals); none is left prepared with a generic plan.
    assert [(row.statement, row.generic_plans) for row in plans if row.generic_plans] == []
