"""PgBouncer in front of a private server: psycopg and asyncpg in both pool modes, and the
two ways asyncpg's defaults break behind it (prepared statements, startup parameters)."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest
from deploy.pgbouncer import PoolMode
from deploy.postgres import PostgresInstance

from tests.infra.fixtures import MakePgBouncer


@pytest.mark.parametrize("mode", ["transaction", "session"])
async def test_psycopg_and_asyncpg_connect_through_pgbouncer(
    mode: PoolMode, private_postgres: PostgresInstance, pgbouncer: MakePgBouncer
) -> None:
    private_postgres.create_database("app")
    bouncer = pgbouncer(mode)
    private_postgres.execute("CREATE TABLE t (id int)", database="app")

    with psycopg.connect(bouncer.url("app"), autocommit=True) as conn:
        conn.execute("INSERT INTO t VALUES (%s)", (1,))  # server-side binding: extended protocol
    # The statement cache is safe in session mode only (see the next test).
    cache = 0 if mode == "transaction" else 100
    conn2 = await asyncpg.connect(bouncer.url("app"), statement_cache_size=cache)
    try:
        await conn2.execute("INSERT INTO t VALUES ($1)", 2)
        assert await conn2.fetchval("SELECT array_agg(id ORDER BY id) FROM t") == [1, 2]
        # Read while the client is connected: it made server links. Count every server
        # state: after a session ends, its link spends a moment in sv_tested (reset query).
        pool = bouncer.pool("app")
    finally:
        await conn2.close()

    assert pool["pool_mode"] == mode
    assert sum(v for k, v in pool.items() if k.startswith("sv_") and isinstance(v, int)) >= 1
    assert private_postgres.execute("SELECT id FROM t ORDER BY id", database="app") == [(1,), (2,)]


async def _reuse_a_prepared_statement_after_a_server_switch(url: str, cache: int) -> int:
    """Prepare a statement on one server link, then make PgBouncer hand its client another.

    With two server links: `a` holds the first in a transaction, so `b` prepares on the second;
    `c` then holds the second, `a` frees the first, and `b`'s next run can only get the first.
    """
    a, b, c = [await asyncpg.connect(url, statement_cache_size=cache) for _ in range(3)]
    try:
        async with a.transaction():
            await a.execute("SELECT 1")
            assert await b.fetchval("SELECT $1::int", 1) == 1
            c_transaction = c.transaction()
            await c_transaction.start()
            await c.execute("SELECT 1")
        try:
            value: int = await b.fetchval("SELECT $1::int", 2)
        finally:
            await c_transaction.rollback()
        return value
    finally:
        for conn in (a, b, c):
            await conn.close()


async def test_transaction_mode_needs_asyncpg_statement_cache_off(
    pgbouncer: MakePgBouncer,
) -> None:
    bouncer = pgbouncer("transaction", default_pool_size=2)

    with pytest.raises(asyncpg.InvalidSQLStatementNameError, match="does not exist"):
        await _reuse_a_prepared_statement_after_a_server_switch(bouncer.url(), cache=100)
    # Unnamed statements, parsed again with every execution, survive the switch.
    assert await _reuse_a_prepared_statement_after_a_server_switch(bouncer.url(), cache=0) == 2


async def test_session_mode_keeps_asyncpg_statement_cache(pgbouncer: MakePgBouncer) -> None:
    bouncer = pgbouncer("session", default_pool_size=3)  # one server link per client

    assert await _reuse_a_prepared_statement_after_a_server_switch(bouncer.url(), cache=100) == 2


async def test_startup_parameters_are_refused_unless_ignored(pgbouncer: MakePgBouncer) -> None:
    strict = pgbouncer("transaction")
    lenient = pgbouncer("transaction", ignore_startup_parameters=["jit"])

    with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter"):
        await asyncpg.connect(strict.url(), server_settings={"jit": "off"})
    conn = await asyncpg.connect(
        lenient.url(), server_settings={"jit": "off"}, statement_cache_size=0
    )
    try:
        # Accepted but dropped: the session keeps the server's default. Settings that matter
        # belong in ALTER DATABASE/ROLE ... SET behind PgBouncer.
        assert await conn.fetchval("SHOW jit") == "on"
    finally:
        await conn.close()
