"""Password hashing (argon2 via pwdlib) and access tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TypeVar

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from catalog.errors import ServiceUnavailableError

T = TypeVar("T")
HASHING_BUSY = "Too many password checks in progress; retry shortly"

ALGORITHM = "HS256"
# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane). The library default takes 64 MiB
# per hash: that alone put a worker past 140 MiB at its first login. Hashes made with
# other parameters still verify (each hash records its own).
_password_hash = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))


class HashingPool:
    """Where argon2 runs: `threads` hashes at once, at most `queue` more waiting.

    Hashing is CPU- and memory-bound (~29 ms of a core each): unbounded, a burst of logins
    saturates every core and everyone's reads slow down 100-fold. Past the bound the
    caller gets ServiceUnavailableError (503 + Retry-After) at once, costing nothing.
    """

    def __init__(self, threads: int, queue: int) -> None:
        self.threads, self.queue = threads, queue
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._admitted = 0  # running + waiting; touched only on the event loop's thread

    @property
    def admitted(self) -> int:
        """Hashes running or waiting now."""
        return self._admitted

    @property
    def reserved(self) -> int:
        """Queue places only password checks may take (`run(..., reserved=True)`): half."""
        return self.queue // 2

    async def run(self, function: Callable[..., T], *args: object, reserved: bool = False) -> T:
        """`function(*args)` in a hashing thread, or ServiceUnavailableError when full.

        Without `reserved`, the last `self.reserved` places are out of reach: hashing new
        passwords (registrations, which anyone may send by the thousand) can never take
        every place, so password checks (logins) always find one.
        """
        limit = self.threads + self.queue - (0 if reserved else self.reserved)
        if self._admitted >= limit:
            # Waiting for one hash per free thread ahead of us, roughly: a second or so.
            raise ServiceUnavailableError(HASHING_BUSY, retry_after=1)
        loop = asyncio.get_running_loop()
        self._admitted += 1
        # Released when the hash finishes, not when the caller stops waiting: a cancelled
        # request's hash still occupies its thread.
        job: Future[T] = self._executor.submit(function, *args)
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(job)

    def _release(self) -> None:
        self._admitted -= 1

    def shutdown(self) -> None:
        """Stop taking work; running hashes finish."""
        self._executor.shutdown(wait=False)


_pool = HashingPool(threads=max(1, (os.cpu_count() or 1) // 2), queue=16)


def configure_hashing(threads: int, queue: int) -> HashingPool:
    """Use a pool of this size from now on (a no-op if unchanged); returns the previous one."""
    global _pool
    previous = _pool
    if (previous.threads, previous.queue) != (threads, queue):
        _pool = HashingPool(threads, queue)
    return previous


def restore_hashing(pool: HashingPool) -> None:
    """Go back to `pool` (as returned by `configure_hashing`)."""
    global _pool
    if _pool is not pool:
        _pool.shutdown()
        _pool = pool


def hash_password(password: str) -> str:
    """Argon2 hash of `password` (salted; never store or log the plain text)."""
    return _password_hash.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    """True when `password` matches `hashed`."""
    return _password_hash.verify(password, hashed)


def is_password_hash(value: str) -> bool:
    """Whether `value` is a hash `verify_password` understands (e.g. one from a backup)."""
    return any(hasher.identify(value) for hasher in _password_hash.hashers)


@cache
def _dummy_hash() -> str:
    return hash_password("catalog-timing-equalizer")


def verify_password_or_dummy(password: str, hashed: str | None) -> bool:
    """Verify against `hashed`, or against a dummy hash when there is no user.

    Unknown emails then cost the same hash work as a wrong password, so response
    time does not reveal which emails are registered.
    """
    if hashed is None:
        _password_hash.verify(password, _dummy_hash())
        return False
    return verify_password(password, hashed)


# Argon2 is deliberately slow (tens of ms): keep it off the event loop.
async def hash_password_async(password: str) -> str:
    """`hash_password` in the hashing pool (ServiceUnavailableError when it is full, the
    places reserved for password checks included)."""
    return await _pool.run(hash_password, password)


async def verify_password_or_dummy_async(password: str, hashed: str | None) -> bool:
    """`verify_password_or_dummy` in the hashing pool (ServiceUnavailableError when full);
    it may take the places reserved for password checks."""
    return await _pool.run(verify_password_or_dummy, password, hashed, reserved=True)


def verify_and_update_or_dummy(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """`verify_password_or_dummy`, and a new hash of `password` with the current parameters
    when it matches a hash made with other ones (pwdlib's `verify_and_update`), else None."""
    if hashed is None:
        return verify_password_or_dummy(password, None), None
    return _password_hash.verify_and_update(password, hashed)


async def verify_and_update_or_dummy_async(
    password: str, hashed: str | None
) -> tuple[bool, str | None]:
    """`verify_and_update_or_dummy` in the hashing pool (ServiceUnavailableError when full);
    a password check, so it may take the places reserved for checks."""
    return await _pool.run(verify_and_update_or_dummy, password, hashed, reserved=True)


def credential_stamp(hashed_password: str, key: str) -> str:
    """A short keyed fingerprint of the stored password hash, carried in tokens.

    A new password gives a new hash, hence a new stamp: tokens issued before the change
    stop authenticating. Keyed (HMAC), so a token reveals nothing checkable offline. A
    re-hash of the same password (new parameters, at login) is not a change: the account
    keeps the old hash as its `stamp_basis`, and every open session stays valid.
    """
    digest = hmac.new(key.encode(), hashed_password.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def derived_key(key: str, purpose: str) -> str:
    """A key for one purpose only, derived from the signing key (HMAC-SHA256).

    What is signed for one purpose (an admin session cookie, say) can then never pass as
    something signed for another (a token or a cursor).
    """
    return hmac.new(key.encode(), f"catalog:{purpose}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid access token asserts."""

    user_id: int
    stamp: str


def create_access_token(subject: int, key: str, expires_minutes: int, *, stamp: str) -> str:
    """A signed token naming the user id and their credential stamp, for `expires_minutes`."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(subject),
        "pwd": stamp,
        "iat": now,
        "exp": now + timedelta(minutes=expires_minutes),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


# The clock a remembered token's expiry is read against (tests move it with PyJWT's).
token_clock: Callable[[], float] = time.time


class VerifiedTokens:
    """Tokens already verified, with their claims, until they expire: the last `size`.

    Checking a token's signature and claims (PyJWT) is about a tenth of an authenticated
    write's CPU, and a client sends the same token with every request. A (token, key)
    pair verifies the same way every time but for its times, which are read again at
    each use as PyJWT reads them: valid from `iat` (whole seconds) until before `exp`.
    Only tokens that verified are kept, so garbage costs what it did. Used on the event
    loop only (no lock).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._verified: dict[tuple[str, str], tuple[TokenClaims, int, int]] = {}

    def __len__(self) -> int:
        return len(self._verified)

    def get(self, token: str, key: str) -> TokenClaims | None:
        """The claims of `token` if it was verified with `key` and is valid now."""
        found = self._verified.get((token, key))
        if found is None:
            return None
        claims, issued, expires = found
        if issued <= token_clock() < expires:
            return claims
        self._verified.pop((token, key), None)
        return None

    def put(self, token: str, key: str, claims: TokenClaims, issued: int, expires: int) -> None:
        """Remember a verified token, forgetting the oldest past `size`."""
        if len(self._verified) >= self._size:
            self._verified.pop(next(iter(self._verified)), None)
        self._verified[(token, key)] = (claims, issued, expires)


_verified_tokens = VerifiedTokens(size=1024)


def decode_access_token(token: str, key: str) -> TokenClaims | None:
    """The claims of a valid, unexpired token; None for anything else."""
    remembered = _verified_tokens.get(token, key)
    if remembered is not None:
        return remembered
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": ["sub", "pwd", "exp"]}
        )
        verified = TokenClaims(user_id=int(claims["sub"]), stamp=str(claims["pwd"]))
        # PyJWT's own reading of the times: whole seconds (`iat` is optional).
        issued, expires = int(claims.get("iat", 0)), int(claims["exp"])
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError):
        return None
    _verified_tokens.put(token, key, verified, issued, expires)
    return verified


def stamp_matches(claims: TokenClaims, hashed_password: str, key: str) -> bool:
    """Whether the token was issued for the password the user has now."""
    return hmac.compare_digest(claims.stamp, credential_stamp(hashed_password, key))
