"""Login throttling: failed password checks slow down an account and a client address.

Every failed check counts against the account (its email, registered or not) and against
the client address, in the database, so every worker and process shares the counts. Past
`max_failures` within the failure window, the key is blocked for a back-off that doubles
with each further failure up to `max_block_seconds` and then ends: an attacker can slow a
real user down, never lock them out for good. A blocked attempt is refused with
TooManyRequestsError before any hashing, and is not itself counted (so the block ends).

Costs: a clean login reads one statement here and writes nothing; a failure is one upsert
that counts both keys (atomic, so concurrent failures count exactly); a success after
failures deletes the account's row. Rows idle for a whole window are purged now and then.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, delete, literal_column, or_, select

from catalog.db.compiled import CompiledQuery
from catalog.db.types import upsert
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import TooManyRequestsError
from catalog.models import LoginFailure

TOO_MANY_FAILURES = "Too many failed logins; retry later"
ACCOUNT, ADDRESS = "account", "address"


@dataclass(slots=True)
class LoginPolicy:
    """How many failures are free, how long counts last, and the longest block."""

    max_failures: int = 5  # per account
    max_failures_per_address: int = 50
    window_seconds: int = 900  # a key idle this long starts again from zero
    max_block_seconds: int = 900
    _next_purge: float = field(default=0.0, init=False, compare=False)

    def threshold(self, scope: str) -> int:
        """Failures allowed before back-off starts, for a scope."""
        return self.max_failures if scope == ACCOUNT else self.max_failures_per_address

    def block_seconds(self, scope: str, failures: int) -> float:
        """How long a key with `failures` recent failures is blocked after the last one."""
        excess = failures - self.threshold(scope)
        if excess < 0:
            return 0.0
        # 1, 2, 4, ... seconds, capped (the exponent too, so it never overflows).
        return float(min(self.max_block_seconds, 2 ** min(excess, 32)))

    def purge_due(self) -> bool:
        """True at most once per window in this process (purging is housekeeping)."""
        now = time.monotonic()
        if now < self._next_purge:
            return False
        self._next_purge = now + self.window_seconds
        return True


def _digest(scope: str, value: str) -> str:
    return hashlib.sha256(f"{scope}:{value}".encode("utf-8", "backslashreplace")).hexdigest()


_READ = CompiledQuery(
    select(LoginFailure.scope, LoginFailure.failures, LoginFailure.last_failure_at).where(
        or_(LoginFailure.key == bindparam("account"), LoginFailure.key == bindparam("address"))
    )
)


def _record() -> Any:
    # Constants as SQL literals: a precompiled statement's parameters are all named ones.
    one: ColumnElement[int] = literal_column("1")
    rows = [
        {
            "key": bindparam(f"{scope}_key"),
            "scope": literal_column(f"'{scope}'"),
            "failures": one,
            "last_failure_at": bindparam(f"{scope}_now", type_=LoginFailure.last_failure_at.type),
        }
        for scope in (ACCOUNT, ADDRESS)
    ]
    statement = upsert(LoginFailure).values(rows)
    return statement.on_conflict_do_update(
        index_elements=[LoginFailure.key],
        set_={
            # A key idle for a whole window starts again at one failure.
            "failures": case(
                (
                    LoginFailure.last_failure_at
                    < bindparam("stale_before", type_=LoginFailure.last_failure_at.type),
                    one,
                ),
                else_=LoginFailure.failures + one,
            ),
            "last_failure_at": statement.excluded.last_failure_at,
        },
    )


_RECORD = CompiledQuery(_record())
_FORGET = CompiledQuery(
    delete(LoginFailure).where(LoginFailure.key == bindparam("account")).returning(LoginFailure.key)
)
_PURGE = CompiledQuery(
    delete(LoginFailure)
    .where(
        LoginFailure.last_failure_at
        < bindparam("stale_before", type_=LoginFailure.last_failure_at.type)
    )
    .returning(LoginFailure.key)
)


@dataclass(slots=True)
class LoginAttempt:
    """One attempt to prove a password: for an account (email), from a client address."""

    policy: LoginPolicy
    email: str
    address: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _account_failed_before: bool = False

    @property
    def _keys(self) -> dict[str, str]:
        return {"account": _digest(ACCOUNT, self.email), "address": _digest(ADDRESS, self.address)}

    def _stale_before(self) -> datetime:
        return self.now - timedelta(seconds=self.policy.window_seconds)

    async def check(self, uow: UnitOfWork) -> None:
        """TooManyRequestsError if the account or the address is blocked now (one read)."""
        rows = await uow.fetch_all(_READ, **self._keys)
        wait = max((self._wait(row) for row in rows), default=0.0)
        self._account_failed_before = any(row["scope"] == ACCOUNT for row in rows)
        if wait > 0:
            raise TooManyRequestsError(TOO_MANY_FAILURES, retry_after=math.ceil(wait))

    def _wait(self, row: Mapping[str, Any]) -> float:
        last: datetime = row["last_failure_at"]
        if last < self._stale_before():
            return 0.0
        blocked_until = last + timedelta(
            seconds=self.policy.block_seconds(row["scope"], row["failures"])
        )
        return max(0.0, (blocked_until - self.now).total_seconds())

    async def failed(self, uow: UnitOfWork) -> None:
        """Count a failure against both keys, committed even though the request fails."""
        keys = self._keys
        await uow.write(
            _RECORD,
            account_key=keys["account"],
            address_key=keys["address"],
            account_now=self.now,
            address_now=self.now,
            stale_before=self._stale_before(),
        )
        if self.policy.purge_due():
            await uow.write(_PURGE, stale_before=self._stale_before())
        await uow.commit()  # the caller raises next, which would roll the unit back

    async def succeeded(self, uow: UnitOfWork) -> None:
        """The right password: the account's failures are forgotten (its address's are not,
        or one valid account would reset an attacker's address between guesses)."""
        if self._account_failed_before:
            await uow.write(_FORGET, account=self._keys["account"])
