"""Users: registration, authentication, the current user, profile and admin operations.

The API and the CLI both come here, so an account follows the same rules whichever way it
is changed: emails normalized by the schemas, passwords hashed with the same parameters,
and a new password hash revoking every token issued before it (tokens carry its stamp).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Integer, String, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from catalog.db.compiled import CompiledQuery
from catalog.db.types import upsert
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import (
    AuthenticationError,
    CatalogError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
)
from catalog.hooks import login_failed
from catalog.models import User, is_valid_id
from catalog.schemas import UserCreate, UserRead, is_storable_text
from catalog.security import (
    TokenClaims,
    hash_password_async,
    stamp_matches,
    verify_and_update_or_dummy_async,
    verify_password_or_dummy_async,
)
from catalog.services.login_throttle import LoginAttempt, LoginPolicy
from catalog.services.versions import (
    MAX_EXPECTED_VERSIONS,
    Expected,
    Versioned,
    expected_params,
    version_matches,
)

USER_NOT_FOUND = "User not found"
INVALID_TOKEN = "Could not validate credentials"
INVALID_LOGIN = "Incorrect email or password"
INACTIVE = "Inactive user"
WRONG_CURRENT_PASSWORD = "Current password is incorrect"
SELF_DELETE = "A superuser cannot delete their own account (another superuser can)"
SELF_DEMOTE = "A superuser cannot remove their own superuser or active flag (another can)"

USER_COLUMNS = (
    User.id,
    User.email,
    User.full_name,
    User.is_active,
    User.is_superuser,
    User.created_at,
    User.version,  # not part of the User: its ETag
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who performs an operation: what permission rules need to know."""

    id: int
    is_superuser: bool

    @property
    def scope(self) -> str:
        """What this principal's own resources (e.g. idempotency keys) are keyed by."""
        return f"user:{self.id}"


@dataclass(frozen=True, slots=True)
class AuthenticatedUser(Principal):
    """The authenticated caller, with their account as the API shows it."""

    account: UserRead
    version: int


class Credentials(NamedTuple):
    """A successful login: whom to issue a token for, and the hash its stamp binds to
    (the account's `stamp_basis`: a re-hash at login does not change it)."""

    user_id: int
    stamp_basis: str


def to_user_read(row: Mapping[Any, Any]) -> UserRead:
    """Shape a result row as the API's User (a dict display: see `to_item_read`)."""
    return {
        "id": row["id"],
        "email": row["email"],
        "full_name": row["full_name"],
        "is_active": row["is_active"],
        "is_superuser": row["is_superuser"],
        "created_at": row["created_at"],
    }


def _by_id() -> Any:
    return User.id == bindparam("user_id", type_=Integer)


_USER = CompiledQuery(select(*USER_COLUMNS).where(_by_id()))
_TOKEN_USER = CompiledQuery(
    select(*USER_COLUMNS, User.hashed_password, User.stamp_basis).where(_by_id())
)
_LOGIN = CompiledQuery(
    select(User.id, User.hashed_password, User.stamp_basis, User.is_active).where(
        User.email == bindparam("email")
    )
)
# A re-hash at login: only if the hash is still the one verified (not a password changed
# meanwhile); the stamps stay those of the first hash. No new version: the account as the
# API shows it did not change.
_OLD_HASH = bindparam("old_hash", type_=String)
_REHASH = CompiledQuery(
    update(User)
    .where(_by_id(), User.hashed_password == _OLD_HASH)
    .values(
        hashed_password=bindparam("new_hash"),
        stamp_basis=func.coalesce(User.stamp_basis, _OLD_HASH),
    )
)
_PASSWORD = CompiledQuery(select(User.email, User.hashed_password).where(_by_id()))
EMAIL_TAKEN = "A user with this email already exists"
_ID_BY_EMAIL = CompiledQuery(select(User.id).where(User.email == bindparam("email")))
_PAGE = CompiledQuery(
    select(*USER_COLUMNS).order_by(User.id).offset(bindparam("skip")).limit(bindparam("limit"))
)
_NEW_USER_FIELDS = ("email", "hashed_password", "full_name", "is_superuser")
_REGISTER = CompiledQuery(
    insert(User)
    .values(**{name: bindparam(name) for name in _NEW_USER_FIELDS})
    .returning(*USER_COLUMNS)
)
_ENSURE = CompiledQuery(
    upsert(User)
    .values(**{name: bindparam(name) for name in _NEW_USER_FIELDS})
    .on_conflict_do_nothing(index_elements=[User.email])
    .returning(User.id)
)


@lru_cache(maxsize=MAX_EXPECTED_VERSIONS + 1)
def _delete(checks: int) -> CompiledQuery:
    where = [_by_id(), *version_matches(User.version, checks)]
    return CompiledQuery(delete(User).where(*where).returning(User.id))


# One shape per subset of the updatable fields and number of expected versions.
@lru_cache(maxsize=16 * (MAX_EXPECTED_VERSIONS + 1))
def _update(fields: frozenset[str], checks: int) -> CompiledQuery:
    values: dict[str, Any] = {f: bindparam(f) for f in sorted(fields)}
    statement = (
        update(User)
        .where(_by_id(), *version_matches(User.version, checks))
        .values(**values, version=User.version + 1)
    )
    return CompiledQuery(statement.returning(*USER_COLUMNS))


_VERSION = CompiledQuery(select(User.version).where(_by_id()))


async def _explain_miss(uow: UnitOfWork, user_id: int) -> CatalogError:
    """Why a write matched no account: there is none, or it changed since `expected`."""
    if await uow.fetch_one(_VERSION, user_id=user_id) is None:
        return NotFoundError(USER_NOT_FOUND)
    return PreconditionFailedError()


async def _new_user_values(data: UserCreate, is_superuser: bool) -> dict[str, Any]:
    return {
        "email": data.email,
        "hashed_password": await hash_password_async(data.password),
        "full_name": data.full_name,
        "is_superuser": is_superuser,
    }


async def register(uow: UnitOfWork, data: UserCreate, *, is_superuser: bool = False) -> UserRead:
    """Create an account; ConflictError when the email is taken (the database decides).

    An email already taken is refused before the password is hashed: a flood of
    registrations of an existing email then costs one indexed read each, not ~29 ms of
    argon2. That read is only a shortcut: a registration racing past it still meets the
    unique constraint, caught below.
    """
    if await uow.fetch_one(_ID_BY_EMAIL, email=data.email) is not None:
        raise ConflictError(EMAIL_TAKEN)
    values = await _new_user_values(data, is_superuser)
    try:
        row = await uow.write(_REGISTER, **values)
    except IntegrityError:
        raise ConflictError(EMAIL_TAKEN) from None
    assert row is not None  # an INSERT ... RETURNING returns its row
    return to_user_read(row)


async def ensure_user(uow: UnitOfWork, data: UserCreate, *, is_superuser: bool) -> bool:
    """Create the account unless the email exists; True if created. Safe under concurrency."""
    values = await _new_user_values(data, is_superuser)
    return await uow.write(_ENSURE, **values) is not None


async def ensure_first_superuser(uow: UnitOfWork, email: str, password: str) -> bool:
    """Create the configured first superuser unless the email exists; True if created.

    The registration rules apply (email normalized, password length): a ValidationError
    for values the API would refuse.
    """
    data = UserCreate(email=email, password=password)
    return await ensure_user(uow, data, is_superuser=True)


async def get_user(uow: UnitOfWork, user_id: int) -> Versioned[UserRead]:
    """The account with this id, with its version; NotFoundError if there is none."""
    row = await uow.fetch_one(_USER, user_id=user_id) if is_valid_id(user_id) else None
    if row is None:
        raise NotFoundError(USER_NOT_FOUND)
    return Versioned(to_user_read(row), row["version"])


async def get_user_id(uow: UnitOfWork, email: str) -> int:
    """The id of the account with this (normalized) email, or NotFoundError."""
    row = await uow.fetch_one(_ID_BY_EMAIL, email=email)
    if row is None:
        raise NotFoundError(f"no user with email {email}")
    return int(row["id"])


async def user_exists(uow: UnitOfWork, user_id: int) -> bool:
    """Whether an account with this id exists (one indexed lookup)."""
    return is_valid_id(user_id) and await uow.fetch_one(_USER, user_id=user_id) is not None


async def list_users(uow: UnitOfWork, *, skip: int, limit: int) -> list[UserRead]:
    """A page of accounts ordered by id."""
    return [to_user_read(row) for row in await uow.fetch_all(_PAGE, skip=skip, limit=limit)]


async def current_user(uow: UnitOfWork, claims: TokenClaims, key: str) -> AuthenticatedUser:
    """The active account a valid token names, read without opening a transaction.

    AuthenticationError if there is no such account or the token predates its current
    password; PermissionDeniedError if the account is inactive.
    """
    user_id = claims.user_id
    row = await uow.fetch_one(_TOKEN_USER, user_id=user_id) if is_valid_id(user_id) else None
    if row is None or not stamp_matches(claims, _stamp_basis(row), key):
        raise AuthenticationError(INVALID_TOKEN)
    if not row["is_active"]:
        raise PermissionDeniedError(INACTIVE)
    return AuthenticatedUser(
        id=row["id"],
        is_superuser=row["is_superuser"],
        account=to_user_read(row),
        version=row["version"],
    )


async def authenticate(
    uow: UnitOfWork, email: str, password: str, *, address: str, policy: LoginPolicy
) -> Credentials:
    """The account these credentials belong to, tried from client `address`.

    AuthenticationError for a wrong email or password (indistinguishable, in answer and
    in time); PermissionDeniedError for a correct password on a deactivated account;
    TooManyRequestsError while the account or the address is throttled (`login_throttle`).
    """
    email = email.strip().lower()
    attempt = LoginAttempt(policy, email, address)
    await attempt.check(uow)
    if not (is_storable_text(email) and is_storable_text(password)):
        # No stored account can match, and neither value can be sent to the database.
        await attempt.failed(uow)
        login_failed.emit("invalid_credentials")
        raise AuthenticationError(INVALID_LOGIN)
    row = await uow.fetch_one(_LOGIN, email=email)
    hashed = row["hashed_password"] if row is not None else None
    valid, rehashed = await verify_and_update_or_dummy_async(password, hashed)
    if not valid or row is None:
        await attempt.failed(uow)
        login_failed.emit("invalid_credentials")
        raise AuthenticationError(INVALID_LOGIN)
    await attempt.succeeded(uow)
    if not row["is_active"]:
        login_failed.emit("inactive")
        raise PermissionDeniedError(INACTIVE)
    if rehashed is not None:  # made with older argon2 parameters: store today's
        await uow.write(_REHASH, user_id=row["id"], old_hash=hashed, new_hash=rehashed)
    return Credentials(row["id"], _stamp_basis(row))


def _stamp_basis(row: Mapping[Any, Any]) -> str:
    """What the account's credential stamp is made from (see `User.stamp_basis`)."""
    basis: str | None = row["stamp_basis"]
    return basis if basis is not None else row["hashed_password"]


async def update_own_account(
    uow: UnitOfWork,
    user_id: int,
    changes: Mapping[str, Any],
    *,
    current_password: str | None,
    address: str,
    policy: LoginPolicy,
    expected: Expected = None,
) -> Versioned[UserRead]:
    """The caller's own changes; a new `password` needs the current one (a stolen token
    alone must not take the account over), checked and throttled like a login."""
    if "password" in changes:
        row = await uow.fetch_one(_PASSWORD, user_id=user_id)
        if row is None:
            raise NotFoundError(USER_NOT_FOUND)
        attempt = LoginAttempt(policy, row["email"], address)
        await attempt.check(uow)
        given = current_password or ""
        if not (
            is_storable_text(given)
            and await verify_password_or_dummy_async(given, row["hashed_password"])
        ):
            await attempt.failed(uow)
            raise PermissionDeniedError(WRONG_CURRENT_PASSWORD)
        await attempt.succeeded(uow)
    return await update_user(uow, user_id, changes, expected=expected)


def _is_self_as_superuser(actor: Principal | None, user_id: int) -> bool:
    return actor is not None and actor.is_superuser and actor.id == user_id


async def update_user(
    uow: UnitOfWork,
    user_id: int,
    changes: Mapping[str, Any],
    *,
    actor: Principal | None = None,
    expected: Expected = None,
) -> Versioned[UserRead]:
    """Apply validated field changes (if the account is at one of the `expected` versions,
    when given); a `password` is stored as a new hash, which revokes the account's earlier
    tokens. The version moves on every update.

    A superuser `actor` cannot clear their own superuser or active flag (ConflictError):
    the last superuser could otherwise leave nobody able to administer the service.
    """
    demoting = changes.get("is_superuser") is False or changes.get("is_active") is False
    if demoting and _is_self_as_superuser(actor, user_id):
        raise ConflictError(SELF_DEMOTE)
    if not is_valid_id(user_id):
        raise NotFoundError(USER_NOT_FOUND)
    values = dict(changes)
    if "password" in values:
        values["hashed_password"] = await hash_password_async(values.pop("password"))
        values["stamp_basis"] = None  # a new password: earlier tokens and sessions end
    row = None
    if expected != ():  # () names no version that can match
        query = _update(frozenset(values), len(expected or ()))
        row = await uow.write(query, **values, **expected_params(expected), user_id=user_id)
    if row is None:
        raise await _explain_miss(uow, user_id)
    return Versioned(to_user_read(row), row["version"])


async def delete_user(
    uow: UnitOfWork, user_id: int, *, actor: Principal | None = None, expected: Expected = None
) -> None:
    """Delete an account (at an `expected` version, when given); the database cascades the
    delete to its items.

    A superuser `actor` cannot delete themselves (ConflictError), for the reason above.
    """
    if _is_self_as_superuser(actor, user_id):
        raise ConflictError(SELF_DELETE)
    if not is_valid_id(user_id):
        raise NotFoundError(USER_NOT_FOUND)
    params = expected_params(expected)
    query = _delete(len(expected or ()))
    if expected == () or await uow.write(query, **params, user_id=user_id) is None:
        raise await _explain_miss(uow, user_id)
