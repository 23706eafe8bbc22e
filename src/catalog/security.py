"""Password hashing (argon2 via pwdlib) and access tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

ALGORITHM = "HS256"
# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane). The library default takes 64 MiB
# per hash: that alone put a worker past 140 MiB at its first login. Hashes made with
# other parameters still verify (each hash records its own).
_password_hash = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))
# Hashing is CPU- and memory-bound: a few threads bound both under a burst of logins,
# where the default thread pool would run dozens at once.
_HASHING = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="argon2")


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
    """`hash_password` in the hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


async def verify_password_or_dummy_async(password: str, hashed: str | None) -> bool:
    """`verify_password_or_dummy` in the hashing threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_HASHING, verify_password_or_dummy, password, hashed)


def credential_stamp(hashed_password: str, key: str) -> str:
    """A short keyed fingerprint of the stored password hash, carried in tokens.

    A new password gives a new hash, hence a new stamp: tokens issued before the change
    stop authenticating. Keyed (HMAC), so a token reveals nothing checkable offline.
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


def decode_access_token(token: str, key: str) -> TokenClaims | None:
    """The claims of a valid, unexpired token; None for anything else."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], options={"require": ["sub", "pwd", "exp"]}
        )
        return TokenClaims(user_id=int(claims["sub"]), stamp=str(claims["pwd"]))
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None


def stamp_matches(claims: TokenClaims, hashed_password: str, key: str) -> bool:
    """Whether the token was issued for the password the user has now."""
    return hmac.compare_digest(claims.stamp, credential_stamp(hashed_password, key))
