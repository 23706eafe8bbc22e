"""Login throttling: failed password checks slow down guessing, never the account's owner.

Every failed check is counted, in the database (so every worker and process shares the
counts), under three keys (OWASP's authentication cheat sheet: throttle per account *and*
address, not per account alone, or anyone could lock a named account out):
- `account`: this account (its email, registered or not) from this client address;
  `max_failures` are free, then back-off. An attacker at one address throttles only
  themselves: the owner at another address has a clean key of their own.
- `address`: this client address over every account (`max_failures_per_address`).
- `global`: this account from every address (`max_failures_per_account`, much higher). Past
  it, an address that has itself failed for this account is held back as well: guessing from
  many addresses stays bounded per account, while an owner who has not mistyped is never
  refused.
Past a key's threshold within the failure window, it is blocked for a back-off that doubles
with each further failure up to `max_block_seconds` and then ends (never a permanent
lock-out). Under its threshold a key never blocks, whatever the order of the clocks of the
attempts involved. A blocked attempt is refused with TooManyRequestsError before any
hashing, and is not itself counted (so the block ends).

Costs: a clean login reads one statement here and writes nothing; a failure is one upsert
that counts the three keys (atomic, so concurrent failures count exactly); a success after
failures deletes the account's rows (its address's are kept). Rows idle for a whole window
are purged now and then.
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
ACCOUNT, ADDRESS, GLOBAL = "account", "address", "global"
SCOPES = (ACCOUNT, ADDRESS, GLOBAL)


@dataclass(slots=True)
class LoginPolicy:
    """How many failures are free, how long counts last, and the longest block."""

    max_failures: int = 5  # per account from one address
    max_failures_per_address: int = 50
    max_failures_per_account: int = 100  # per account from every address
    window_seconds: int = 900  # a key idle this long starts again from zero
    max_block_seconds: int = 900
    _next_purge: float = field(default=0.0, init=False, compare=False)

    def threshold(self, scope: str) -> int:
        """Failures allowed before back-off starts, for a scope."""
        if scope == ACCOUNT:
            return self.max_failures
        return self.max_failures_per_address if scope == ADDRESS else self.max_failures_per_account

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
        or_(*(LoginFailure.key == bindparam(scope) for scope in SCOPES))
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
        for scope in SCOPES
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
    delete(LoginFailure)
    .where(or_(LoginFailure.key == bindparam(ACCOUNT), LoginFailure.key == bindparam(GLOBAL)))
    .returning(LoginFailure.key)
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
        # The account's key from this address: the email and the address, NUL-separated
        # (neither holds a NUL the database could store, so no two pairs share a key).
        return {
            ACCOUNT: _digest(ACCOUNT, f"{self.email}\0{self.address}"),
            ADDRESS: _digest(ADDRESS, self.address),
            GLOBAL: _digest(GLOBAL, self.email),
        }

    def _stale_before(self) -> datetime:
        return self.now - timedelta(seconds=self.policy.window_seconds)

    async def check(self, uow: UnitOfWork) -> None:
        """TooManyRequestsError if the account or the address is blocked now (one read)."""
        rows = await uow.fetch_all(_READ, **self._keys)
        failed_here = any(
            row["scope"] == ACCOUNT and row["last_failure_at"] >= self._stale_before()
            for row in rows
        )
        # The account-wide count holds back only addresses that have failed for it: an
        # owner who has not mistyped is never refused because of others' guesses.
        waits = (self._wait(row) for row in rows if row["scope"] != GLOBAL or failed_here)
        wait = max(waits, default=0.0)
        self._account_failed_before = any(row["scope"] in (ACCOUNT, GLOBAL) for row in rows)
        if wait > 0:
            raise TooManyRequestsError(TOO_MANY_FAILURES, retry_after=math.ceil(wait))

    def _wait(self, row: Mapping[str, Any]) -> float:
        last: datetime = row["last_failure_at"]
        if last < self._stale_before():
            return 0.0
        block = self.policy.block_seconds(row["scope"], row["failures"])
        if block <= 0:
            # Under the threshold nothing blocks, even when a concurrent attempt stamped its
            # failure later than this attempt's own clock (`last` after `now`).
            return 0.0
        blocked_until = last + timedelta(seconds=block)
        return max(0.0, (blocked_until - self.now).total_seconds())

    async def failed(self, uow: UnitOfWork) -> None:
        """Count a failure against both keys, committed even though the request fails."""
        keys = self._keys
        await uow.write(
            _RECORD,
            **{f"{scope}_key": keys[scope] for scope in SCOPES},
            **{f"{scope}_now": self.now for scope in SCOPES},
            stale_before=self._stale_before(),
        )
        if self.policy.purge_due():
            await uow.write(_PURGE, stale_before=self._stale_before())
        await uow.commit()  # the caller raises next, which would roll the unit back

    async def succeeded(self, uow: UnitOfWork) -> None:
        """The right password: the account's failures are forgotten (its address's are not,
        or one valid account would reset an attacker's address between guesses)."""
        if self._account_failed_before:
            keys = self._keys
            await uow.write(_FORGET, account=keys[ACCOUNT], **{GLOBAL: keys[GLOBAL]})
