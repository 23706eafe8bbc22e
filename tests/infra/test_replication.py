"""Streaming replicas of a private server: one that keeps up, one that applies late on purpose."""

from __future__ import annotations

import time

from deploy.postgres import PostgresInstance
from deploy.procs import wait_until

from tests.infra.fixtures import MakeReplica

DELAY_S = 2.0


def test_a_replica_replays_committed_rows(
    private_postgres: PostgresInstance, replica: PostgresInstance
) -> None:
    private_postgres.execute("CREATE TABLE t (id int PRIMARY KEY)")
    private_postgres.execute("INSERT INTO t VALUES (1), (2)")
    commit_lsn = private_postgres.current_lsn()

    replica.wait_for_replay(commit_lsn, timeout=30)

    assert replica.in_recovery()
    assert replica.replay_lsn() >= commit_lsn
    assert replica.execute("SELECT id FROM t ORDER BY id") == [(1,), (2,)]


def test_a_delayed_replica_shows_a_commit_only_after_the_delay(
    private_postgres: PostgresInstance, make_replica: MakeReplica
) -> None:
    primary = private_postgres
    delayed = make_replica(delay=DELAY_S)
    primary.execute("CREATE TABLE t (id int PRIMARY KEY)")
    delayed.wait_for_replay(timeout=30)  # the table exists there: we start level

    started = time.monotonic()
    primary.execute("INSERT INTO t VALUES (1)")
    commit_lsn = primary.current_lsn()
    rows_now = delayed.scalar("SELECT count(*) FROM t")
    replayed_now = delayed.replay_lsn()
    if time.monotonic() - started < DELAY_S:  # both reads happened inside the delay
        assert rows_now == 0
        assert replayed_now < commit_lsn
        assert delayed.lag_bytes() > 0

    wait_until(lambda: delayed.scalar("SELECT count(*) FROM t") == 1, timeout=30, what="row")
    assert time.monotonic() - started >= DELAY_S * 0.9
    assert delayed.replay_lsn() >= commit_lsn
