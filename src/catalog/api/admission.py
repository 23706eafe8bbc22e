"""Per-address admission for registrations: one client address, few registrations at once.

Registration is open to anyone and each one costs an argon2 hash (~29 ms of a core). A
flood from one address could otherwise fill the hashing queue that every login needs:
40 concurrent registrations for 4 s made a real user's login answer 503 on 4 of 6 tries.
Here each worker lets an address run at most `per_address` registrations at once; more are
refused at once with 429 + Retry-After, before any hashing or SQL. (The hashing pool also
keeps places that only password checks may take: see `security.HashingPool`.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from catalog.errors import TooManyRequestsError

TOO_MANY_REGISTRATIONS = "Too many registrations in progress from this address; retry shortly"


class PerAddressGate:
    """At most `per_address` holders per client address at once (in this process)."""

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._running: dict[str, int] = {}  # touched only on the event loop's thread

    def running(self, address: str) -> int:
        """How many holders `address` has now."""
        return self._running.get(address, 0)

    @asynccontextmanager
    async def admit(self, address: str) -> AsyncIterator[None]:
        """Hold a place for `address`, or TooManyRequestsError when it has them all."""
        count = self._running.get(address, 0)
        if count >= self.per_address:
            raise TooManyRequestsError(TOO_MANY_REGISTRATIONS, retry_after=1)
        self._running[address] = count + 1
        try:
            yield
        finally:
            left = self._running[address] - 1
            if left:
                self._running[address] = left
            else:
                del self._running[address]  # the map holds only addresses in flight
