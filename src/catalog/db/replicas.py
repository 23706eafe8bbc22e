"""Read replicas (PostgreSQL streaming replication), with read-your-writes.

A unit of work that has not written sends its reads to a replica, unless the client
showed (X-Catalog-LSN) that it has seen a write that replica has not replayed yet; then the
primary answers. Every write's response carries the primary's WAL position after its
commit, so a client that sends it back never reads older data than its own writes.

What a replica has replayed, and how far behind it is, comes from a poller (a few tiny
queries a second), not from the request: a read costs nothing extra. Its figures can only
be older than the truth, so a choice based on them is safe. A replica that is down, not in
recovery, or further behind than REPLICA_MAX_LAG_SECONDS is skipped; with none left,
reads go to the primary.

A position no write has reached yet (`FFFFFFFF/FFFFFFFF` from any anonymous client) would
send every read to the primary: `vouch` checks a client's position against the primary's,
asking the primary afresh only when the position is past the last one polled, one such
question in flight at a time. A position beyond the primary's is ignored (and counted).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("catalog.db")
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
POLL_INTERVAL_SECONDS = 0.2
POLL_TIMEOUT_SECONDS = 1.0
HISTORY = 600  # primary positions kept: 2 minutes at the poll interval


def parse_lsn(value: str) -> int | None:
    """A WAL position as PostgreSQL prints it ("16/B374D848") as a number; None if not one."""
    match = _LSN.fullmatch(value.strip())
    if match is None:
        return None
    return (int(match.group(1), 16) << 32) + int(match.group(2), 16)


def format_lsn(value: int) -> str:
    """The inverse of `parse_lsn`."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass
class Replica:
    """One replica: its engine and what the poller last saw of it."""

    engine: AsyncEngine
    name: str
    replayed: int = 0  # WAL position replayed, as last polled
    healthy: bool = False  # answered the last poll, in recovery, within the lag bound
    lag: float | None = None  # seconds behind the primary, as last polled


@dataclass
class ReplicaSet:
    """The replicas of one Database and the poller that keeps their figures fresh."""

    primary: AsyncEngine
    replicas: Sequence[Replica]
    max_lag: float
    _history: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    _turns: itertools.cycle[int] = field(init=False)
    _poller: asyncio.Task[None] | None = None
    _probe: asyncio.Future[int | None] | None = None  # the primary asked afresh
    _probe_started: float = 0.0

    def __post_init__(self) -> None:
        self._turns = itertools.cycle(range(len(self.replicas)))

    async def vouch(self, seen: int) -> bool:
        """Whether the primary has reached WAL position `seen` (a real write's is); False
        for a position from the future, which no write can have answered."""
        if self._history and seen <= self._history[-1][1]:
            return True
        asked_at = time.monotonic()
        position = await self._fresh_primary_position(asked_at)
        # Unknown (the primary does not answer): the safe side, as if it were real.
        return position is None or seen <= position

    async def _fresh_primary_position(self, asked_at: float) -> int | None:
        """The primary's position from a query sent after `asked_at`: one in flight at a
        time, shared by every caller that asked before it was sent (a flood of forged
        positions costs the primary one tiny query at a time)."""
        while True:
            probe = self._probe
            if probe is not None and self._probe_started >= asked_at:
                return await asyncio.shield(probe)
            if probe is None or probe.done():
                self._probe_started = time.monotonic()
                self._probe = probe = asyncio.ensure_future(self._primary_position())
                return await asyncio.shield(probe)
            await asyncio.wait([probe])  # sent before we asked: wait for the next one

    async def _primary_position(self) -> int | None:
        position = await _scalar(self.primary, "SELECT pg_current_wal_lsn()::text")
        return None if position is None else parse_lsn(position)

    def choose(self, seen: int | None) -> AsyncEngine | None:
        """A replica for a read by a client that has seen WAL position `seen`, or None (the
        primary). Round robin over the healthy replicas that have replayed past `seen`."""
        for _ in range(len(self.replicas)):
            replica = self.replicas[next(self._turns)]
            if replica.healthy and (seen is None or replica.replayed >= seen):
                return replica.engine
        return None

    def mark_down(self, engine: AsyncEngine) -> None:
        """A read on this replica failed: skip it until the poller sees it well again."""
        for replica in self.replicas:
            if replica.engine is engine:
                replica.healthy = False

    # --- polling ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling (in the app's lifespan: per worker, after fork)."""
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None

    async def poll(self) -> None:
        """One round: the primary's position, then each replica's."""
        now = time.monotonic()
        position = await _scalar(self.primary, "SELECT pg_current_wal_lsn()::text")
        if position is not None and (lsn := parse_lsn(position)) is not None:
            self._history.append((now, lsn))
        await asyncio.gather(*(self._poll_replica(replica) for replica in self.replicas))

    async def _poll_replica(self, replica: Replica) -> None:
        replayed = await _scalar(
            replica.engine,
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END",
        )
        lsn = parse_lsn(replayed) if replayed is not None else None
        if lsn is None:  # down, or promoted (no longer a replica)
            if replica.healthy:
                logger.warning("replica %s is unavailable: reads go elsewhere", replica.name)
            replica.healthy, replica.lag = False, None
            return
        replica.replayed = lsn
        replica.lag = self.lag(lsn, time.monotonic())
        healthy = replica.lag is not None and replica.lag <= self.max_lag
        if healthy != replica.healthy:
            logger.warning(
                "replica %s is %s (%.1f s behind)",
                replica.name,
                "back in use" if healthy else "lagging: reads go elsewhere",
                replica.lag if replica.lag is not None else float("inf"),
            )
        replica.healthy = healthy

    def lag(self, replayed: int, now: float) -> float | None:
        """Seconds since the primary was past `replayed` (0 if the replica is caught up;
        None before the first poll of the primary)."""
        if not self._history:
            return None
        behind_since = None
        for moment, position in reversed(self._history):
            if position <= replayed:
                break
            behind_since = moment
        return 0.0 if behind_since is None else now - behind_since

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception as error:  # the primary is down: keep the last figures
                logger.debug("replica poll failed: %s", error)
            await asyncio.sleep(POLL_INTERVAL_SECONDS)


async def _scalar(engine: AsyncEngine, sql: str) -> str | None:
    """One value from a short query, or None if the server does not answer in time."""
    try:
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")  # no BEGIN
        async with asyncio.timeout(POLL_TIMEOUT_SECONDS), autocommit.connect() as connection:
            value = await connection.scalar(text(sql))
            return None if value is None else str(value)
    except Exception:
        return None
