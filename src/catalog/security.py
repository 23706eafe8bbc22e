"""Password hashing (argon2 via pwdlib) and access tokens (JWT, HS256)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import jwt
from anyio import to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

ALGORITHM = "HS256"
_password_hash = PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    """Argon2 hash of `password` (salted; never store or log the plain text)."""
    return _password_hash.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    """True when `password` matches `hashed`."""
    return _password_hash.verify(password, hashed)


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
    """`hash_password` in a worker thread."""
    return await to_thread.run_sync(hash_password, password)


async def verify_password_or_dummy_async(password: str, hashed: str | None) -> bool:
    """`verify_password_or_dummy` in a worker thread."""
    return await to_thread.run_sync(verify_password_or_dummy, password, hashed)


def create_access_token(subject: int, key: str, expires_minutes: int) -> str:
    """A signed token naming the user id, valid for `expires_minutes`."""
    now = datetime.now(UTC)
    claims = {"sub": str(subject), "iat": now, "exp": now + timedelta(minutes=expires_minutes)}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_access_token(token: str, key: str) -> int | None:
    """The user id in a valid, unexpired token; None for anything else."""
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
        return int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError, TypeError):
        return None
