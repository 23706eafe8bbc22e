"""X-Catalog-LSN from the future (issue 18, finding 11), without a server.

Before: any anonymous client sending `FFFFFFFF/FFFFFFFF` moved its reads to the primary.
A position beyond the primary's cannot come from a real write: it is ignored and counted.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from catalog import hooks
from catalog.api import deps
from catalog.db.compiled import CompiledQuery
from catalog.db.replicas import Replica, ReplicaSet
from catalog.db.unit_of_work import UnitOfWork
from catalog.logs import user_id_var
from catalog.models import User
from catalog.security import create_access_token

PRIMARY = cast(AsyncEngine, object())
KEY = "k" * 32
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


async def test_the_token_check_and_the_route_read_through_one_unit_of_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One unit per request: with replicas, each unit checks X-Catalog-LSN (a forged one is
    # counted, a fresh one may cost a round trip to the primary), so a second would
    # check, and count, the same position twice.
    made: list[object] = []

    def unit_of_work(reads_only: bool) -> object:
        made.append(object())
        return made[-1]

    database = SimpleNamespace(replicas=None, unit_of_work=unit_of_work)
    app = SimpleNamespace(state=SimpleNamespace(database=database, signing_key=KEY))
    request = Request({"type": "http", "app": app, "method": "GET", "headers": []})
    checked_with: list[object] = []

    async def current_user(uow: object, claims: object, key: str) -> Any:
        checked_with.append(uow)
        return SimpleNamespace(id=1)

    monkeypatch.setattr(deps, "current_user", current_user)
    token = create_access_token(1, KEY, 5, stamp="s")
    reset = user_id_var.set(None)
    try:
        await deps.get_current_user(request, token)
    finally:
        user_id_var.reset(reset)
    assert checked_with == [await deps.get_reading_unit_of_work(request)] == made
