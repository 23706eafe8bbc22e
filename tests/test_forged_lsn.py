"""X-Catalog-LSN from the future (issue 18, finding 11), without a server.

Before: any anonymous client sending `FFFFFFFF/FFFFFFFF` moved its reads to the primary.
A position beyond the primary's cannot come from a real write: it is ignored and counted.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog import hooks
from catalog.db.compiled import CompiledQuery
from catalog.db.replicas import Replica, ReplicaSet
from catalog.db.unit_of_work import UnitOfWork
from catalog.models import User

PRIMARY = cast(AsyncEngine, object())
FORGED = 0xFFFFFFFF_FFFFFFFF  # "FFFFFFFF/FFFFFFFF", the furthest position there is
assert FORGED is not None


class _Probed(ReplicaSet):
    """A replica set whose primary is at `position`; counts the fresh questions."""

    position = 1000
    probes = 0

    async def _primary_position(self) -> int | None:
        self.probes += 1
        await asyncio.sleep(0)  # a round trip: others may ask meanwhile
        return self.position


def _replicas() -> tuple[_Probed, Replica]:
    replica = Replica(cast(AsyncEngine, object()), "replica", replayed=1000, healthy=True)
    replicas = _Probed(primary=PRIMARY, replicas=[replica], max_lag=5.0)
    replicas._history.append((time.monotonic(), 1000))  # the poller's last look
    return replicas, replica


async def test_a_position_the_primary_has_reached_is_vouched_for_without_asking() -> None:
    replicas, _ = _replicas()
    assert await replicas.vouch(1000)
    assert replicas.probes == 0


async def test_a_position_past_the_last_poll_is_checked_afresh() -> None:
    replicas, _ = _replicas()
    replicas.position = 2000  # a write since the last poll
    assert await replicas.vouch(1500)
    assert not await replicas.vouch(FORGED)


async def test_a_flood_of_forged_positions_asks_the_primary_one_question_at_a_time() -> None:
    replicas, _ = _replicas()
    answers = await asyncio.gather(*(replicas.vouch(FORGED) for _ in range(50)))
    assert answers == [False] * 50
    assert replicas.probes <= 2  # one in flight, and at most one sent after it


async def test_a_forged_position_is_ignored_and_counted_by_the_unit_of_work() -> None:
    replicas, replica = _replicas()
    used: list[Any] = []

    async def fetch(engine: Any, query: Any, params: Any, *, retry_lost: bool) -> list[Any]:
        used.append(engine)
        return []

    database = SimpleNamespace(
        replicas=replicas, engine=PRIMARY, backend=SimpleNamespace(fetch=fetch)
    )
    ignored: list[None] = []
    stop = hooks.lsn_ignored.subscribe(lambda: ignored.append(None))
    try:
        uow = UnitOfWork(cast(Any, database), reads_only=True)
        uow.seen = FORGED
        query = CompiledQuery(select(User.id))
        await uow.fetch_all(query)
        await uow.fetch_all(query)
    finally:
        stop()
    assert used == [replica.engine, replica.engine]  # before: the primary, every time
    assert len(ignored) == 1
