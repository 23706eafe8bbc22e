"""Replica choice, WAL positions and the consistency header, without a server.

(tests/faults/test_replicas.py runs the same against a real primary and streaming replica.)
"""

from __future__ import annotations

from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.api.app import create_app
from catalog.config import Settings
from catalog.db.replicas import Replica, ReplicaSet, format_lsn, parse_lsn

PRIMARY = cast(AsyncEngine, object())


def _engine() -> AsyncEngine:
    return cast(AsyncEngine, object())


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_a_wal_position_survives_formatting(position: int) -> None:
    assert parse_lsn(format_lsn(position)) == position


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0/0", 0), ("16/B374D848", (0x16 << 32) + 0xB374D848), (" 0/3A0F2C8 ", 0x3A0F2C8)],
)
def test_wal_positions_as_postgresql_prints_them(text: str, expected: int) -> None:
    assert parse_lsn(text) == expected


@pytest.mark.parametrize("text", ["", "0", "0/", "/1", "g/1", "1/2/3", "123456789/0", "-1/0"])
def test_anything_else_is_not_a_wal_position(text: str) -> None:
    assert parse_lsn(text) is None


def _set(*replicas: Replica, max_lag: float = 5.0) -> ReplicaSet:
    return ReplicaSet(primary=PRIMARY, replicas=replicas, max_lag=max_lag)


def test_reads_go_round_robin_to_healthy_replicas() -> None:
    a, b, down = (Replica(_engine(), name, healthy=name != "down") for name in ("a", "b", "down"))
    replicas = _set(a, b, down)
    chosen = [replicas.choose(None) for _ in range(6)]
    assert chosen.count(a.engine) == 3
    assert chosen.count(b.engine) == 3


def test_a_client_that_saw_a_write_only_reads_from_replicas_that_replayed_it() -> None:
    behind = Replica(_engine(), "behind", replayed=100, healthy=True)
    ahead = Replica(_engine(), "ahead", replayed=200, healthy=True)
    replicas = _set(behind, ahead)
    assert {replicas.choose(150) for _ in range(4)} == {ahead.engine}
    assert replicas.choose(201) is None  # the primary answers


def test_with_no_healthy_replica_reads_go_to_the_primary() -> None:
    replica = Replica(_engine(), "a", replayed=100, healthy=True)
    replicas = _set(replica)
    replicas.mark_down(replica.engine)
    assert replicas.choose(None) is None


def test_lag_is_the_time_since_the_primary_moved_past_the_replica() -> None:
    replicas = _set(Replica(_engine(), "a"))
    assert replicas.lag(0, now=100.0) is None  # nothing known of the primary yet
    replicas._history.extend([(100.0, 10), (101.0, 20), (102.0, 30)])
    assert replicas.lag(30, now=105.0) == 0.0  # caught up
    assert replicas.lag(25, now=105.0) == 3.0  # the primary passed 25 at 102
    assert replicas.lag(10, now=105.0) == 4.0
    assert replicas.lag(5, now=105.0) == 5.0  # behind since before the oldest figure


def test_replicas_must_be_postgresql_and_so_must_the_primary() -> None:
    with pytest.raises(ValueError, match="PostgreSQL replicas"):
        Settings(
            database_url="postgresql://db/catalog",
            database_replica_urls="sqlite:///other.db",
        )
    with pytest.raises(ValueError, match="PostgreSQL DATABASE_URL"):
        Settings(
            database_url="sqlite:///catalog.db",
            database_replica_urls="postgresql://replica/catalog",
        )
    settings = Settings(
        database_url="postgresql://primary/catalog",
        database_replica_urls="postgresql://r1/catalog, postgresql://r2/catalog",
    )
    assert settings.database_replica_urls == ("postgresql://r1/catalog", "postgresql://r2/catalog")


def test_openapi_documents_the_token_on_writes_only() -> None:
    settings = Settings(
        database_url="postgresql://primary/catalog",
        database_replica_urls="postgresql://replica/catalog",
        secret_key="replica-docs-" + "k" * 32,
    )
    paths = create_app(settings).openapi()["paths"]
    assert "X-Catalog-LSN" in paths["/items"]["post"]["responses"]["201"]["headers"]
    assert "X-Catalog-LSN" in paths["/items/{item_id}"]["patch"]["responses"]["200"]["headers"]
    assert "X-Catalog-LSN" not in paths["/items"]["get"]["responses"]["200"].get("headers", {})
