"""The Patroni cluster fails over when the leader's postmaster is killed, twice in a row,
without losing a committed row, and HAProxy's write port follows the new leader."""

from __future__ import annotations

import time

import psycopg
import pytest
from deploy.patroni import PatroniCluster, wait_writable

FAILOVERS = 2


def _ids(url: str) -> list[int]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM t ORDER BY id")]


@pytest.mark.slow
def test_leader_crash_fails_over_twice_and_keeps_committed_rows(
    patroni_cluster: PatroniCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = patroni_cluster
    with psycopg.connect(cluster.write_url(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS t")
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    timings = []

    for attempt in range(1, FAILOVERS + 1):
        with psycopg.connect(cluster.write_url(), autocommit=True) as conn:
            # Acknowledged only once the synchronous standby has it: the failover candidate.
            conn.execute("INSERT INTO t VALUES (%s)", (attempt,))

        killed_at = time.monotonic()
        old = cluster.kill_leader_postmaster()
        writable_after = wait_writable(cluster.write_url(), timeout=60)
        new = cluster.wait_for_new_leader(old, timeout=60)
        routed_after = time.monotonic() - killed_at

        assert new != old
        assert _ids(cluster.write_url()) == list(range(1, attempt + 1))
        leader = cluster.wait_healthy(timeout=120)  # the old leader is back, as a replica
        rejoined_after = time.monotonic() - killed_at
        members = {m.name: m for m in cluster.members()}
        assert leader.name == new
        assert members[old].role in {"replica", "sync_standby"}
        assert members[old].timeline == leader.timeline
        timings.append((old, new, writable_after, routed_after, rejoined_after))

    with psycopg.connect(cluster.read_url(), connect_timeout=5) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    with capsys.disabled():
        for old, new, writable, routed, rejoined in timings:
            print(
                f"\n[failover] {old} -> {new}: first write through HAProxy {writable:.1f} s "
                f"after the kill, routing confirmed {routed:.1f} s, old leader rejoined "
                f"{rejoined:.1f} s"
            )
