"""A private PostgreSQL server survives a crash, hangs when frozen, and drops sessions on demand."""

from __future__ import annotations

import concurrent.futures
import signal

import psycopg
import pytest
from deploy.postgres import PostgresInstance


def test_kill_9_then_restart_keeps_every_committed_row(private_postgres: PostgresInstance) -> None:
    pg = private_postgres
    pg.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pg.execute("INSERT INTO t SELECT generate_series(1, 100)")
    old_pid = pg.pid

    pg.kill(signal.SIGKILL)  # no shutdown checkpoint: the restart replays the WAL
    assert not pg.running
    with pytest.raises(psycopg.OperationalError):
        pg.execute("SELECT 1", connect_timeout=2)
    pg.start()

    assert pg.pid != old_pid
    assert pg.scalar("SELECT count(*) FROM t") == 100
    pg.restart(mode="immediate")  # the other crash-like stop: the same guarantee
    assert pg.scalar("SELECT count(*) FROM t") == 100


def test_a_frozen_server_hangs_queries_until_thawed(private_postgres: PostgresInstance) -> None:
    pg = private_postgres
    with (
        psycopg.connect(pg.url(), autocommit=True) as conn,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        pg.freeze()
        try:
            pending = pool.submit(lambda: conn.execute("SELECT 42").fetchone())
            with pytest.raises(concurrent.futures.TimeoutError):
                pending.result(timeout=1)  # its backend is stopped: no answer can come
            with pytest.raises(psycopg.OperationalError, match="timeout"):
                psycopg.connect(pg.url(), connect_timeout=2)  # nor does a new connection
        finally:
            pg.thaw()
        assert pending.result(timeout=10) == (42,)
    assert pg.scalar("SELECT 1") == 1


def test_terminate_backends_ends_the_sessions_of_one_database(
    private_postgres: PostgresInstance,
) -> None:
    pg = private_postgres
    url = pg.create_database("app")
    with (
        psycopg.connect(url, autocommit=True) as first,
        psycopg.connect(url, autocommit=True) as second,
        psycopg.connect(pg.url(), autocommit=True) as elsewhere,
    ):
        assert pg.terminate_backends("app") == 2

        for conn in (first, second):
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        assert elsewhere.execute("SELECT 1").fetchone() == (1,)
    with psycopg.connect(url) as fresh:
        assert fresh.execute("SELECT current_database()").fetchone() == ("app",)
