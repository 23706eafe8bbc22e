"""Idempotency keys (Stripe's design): a retried write gets the first one's response.

The key is claimed, the write done and its response stored in ONE transaction:
- a retry after the write committed finds the stored response and gets it back;
- a retry after it failed or never reached the database finds nothing and runs it anew;
- a duplicate racing the first waits on the key's primary key in the database until the
  first commits (then replays it) or rolls back (then runs itself); one still waiting after
  the lock timeout is told the first is in progress (409).
The same key with a different request is refused (422). Keys expire (the claim then
takes over an expired row) and are purged periodically.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import DBAPIError

from catalog.db.compiled import CompiledQuery
from catalog.db.types import upsert
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import CatalogError, ConflictError
from catalog.hooks import idempotent_replayed
from catalog.models import IdempotencyKey

LOCK_NOT_AVAILABLE = "55P03"  # the first request still holds the key past lock_timeout


class IdempotencyKeyReusedError(CatalogError):
    """The key was already used for a different request."""

    status_code = 422


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """What a completed write answered."""

    status_code: int
    body: bytes
    headers: dict[str, str]


def fingerprint(method: str, path: str, body: Any, *, key: str) -> str:
    """A stable digest of a request: method, path and validated body (canonical JSON),
    keyed with a server secret (HMAC-SHA256).

    The body may hold a secret (registration's password), and the digest is kept for up
    to IDEMPOTENCY_KEY_TTL_HOURS: a plain SHA-256 of it, from a leaked database or backup,
    gave the password up at 848,000 guesses per second. Without `key` (derived from
    SECRET_KEY) a stored digest tells nothing that can be checked offline.
    """
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hmac.new(key.encode(), canonical, hashlib.sha256).hexdigest()


_columns = ("scope", "key", "fingerprint", "created_at", "expires_at")
_claim = upsert(IdempotencyKey).values(
    **{name: bindparam(name) for name in _columns},
    status_code=0,
    response_body="",
    response_headers="{}",
)
# Takes over a row only if it expired; a live one stays and the claim returns nothing.
_CLAIM = CompiledQuery(
    _claim.on_conflict_do_update(
        index_elements=[IdempotencyKey.scope, IdempotencyKey.key],
        set_={name: getattr(_claim.excluded, name) for name in _columns[2:]},
        where=IdempotencyKey.expires_at < bindparam("created_at"),
    ).returning(IdempotencyKey.key)
)
_STORED = CompiledQuery(
    select(
        IdempotencyKey.fingerprint,
        IdempotencyKey.status_code,
        IdempotencyKey.response_body,
        IdempotencyKey.response_headers,
    ).where(IdempotencyKey.scope == bindparam("scope"), IdempotencyKey.key == bindparam("key"))
)
_COMPLETE = CompiledQuery(
    update(IdempotencyKey)
    .where(
        IdempotencyKey.scope == bindparam("key_scope"), IdempotencyKey.key == bindparam("key_name")
    )
    .values(
        status_code=bindparam("status_code"),
        response_body=bindparam("response_body"),
        response_headers=bindparam("response_headers"),
    )
)
_PURGE = CompiledQuery(delete(IdempotencyKey).where(IdempotencyKey.expires_at < bindparam("now")))


async def claim(
    uow: UnitOfWork, scope: str, key: str, digest: str, ttl: timedelta
) -> StoredResponse | None:
    """Claim `key` in the unit's transaction: None if this request now owns it (do the
    write, then `complete`), or the response stored by the request that used it first.

    IdempotencyKeyReusedError if that request was a different one; ConflictError if it
    is still in progress.
    """
    await uow.session()  # the key, the write and the response: one transaction
    now = datetime.now(UTC)
    try:
        claimed = await uow.write(
            _CLAIM, scope=scope, key=key, fingerprint=digest, created_at=now, expires_at=now + ttl
        )
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        raise ConflictError("A request with this Idempotency-Key is still in progress") from None
    if claimed is not None:
        return None
    row = await uow.fetch_one(_STORED, scope=scope, key=key)
    assert row is not None  # the claim conflicted with this very row
    if row["fingerprint"] != digest:
        raise IdempotencyKeyReusedError("This Idempotency-Key was used for a different request")
    headers = orjson.loads(row["response_headers"])
    idempotent_replayed.emit()
    return StoredResponse(row["status_code"], row["response_body"].encode(), headers)


async def complete(uow: UnitOfWork, scope: str, key: str, response: StoredResponse) -> None:
    """Store the response of the write that claimed `key` (same transaction)."""
    await uow.write(
        _COMPLETE,
        key_scope=scope,
        key_name=key,
        status_code=response.status_code,
        response_body=response.body.decode(),
        response_headers=orjson.dumps(response.headers).decode(),
    )


async def purge_expired(uow: UnitOfWork) -> None:
    """Delete the expired keys."""
    await uow.write(_PURGE, now=datetime.now(UTC))
