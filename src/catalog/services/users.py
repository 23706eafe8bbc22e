"""Users: registration, authentication, profile and admin operations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.compiled import CompiledQuery
from catalog.db.session import Database
from catalog.errors import AuthenticationError, ConflictError, NotFoundError, PermissionDeniedError
from catalog.models import User
from catalog.schemas import UserCreate, is_storable_text
from catalog.security import (
    TokenClaims,
    hash_password_async,
    stamp_matches,
    verify_password_or_dummy_async,
)
from catalog.services.common import dialect_name, insert_ignoring_duplicates, is_valid_id

USER_NOT_FOUND = "User not found"


async def create_user(
    session: AsyncSession, data: UserCreate, *, is_superuser: bool = False
) -> User:
    """Register a user; ConflictError when the email is taken (enforced by the database)."""
    user = User(
        email=data.email,
        hashed_password=await hash_password_async(data.password),
        full_name=data.full_name,
        is_superuser=is_superuser,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise ConflictError("A user with this email already exists") from None
    await session.refresh(user, ["created_at", "is_active"])
    return user


async def ensure_user(
    session: AsyncSession, *, email: str, password: str, is_superuser: bool
) -> bool:
    """Create the user unless the email exists; True if created. Safe under concurrency."""
    row = {
        "email": email.lower(),
        "hashed_password": await hash_password_async(password),
        "is_superuser": is_superuser,
    }
    result = await session.execute(
        insert_ignoring_duplicates(dialect_name(session), User, [row]).returning(User.id)
    )
    return result.scalar_one_or_none() is not None


async def get_user(session: AsyncSession, user_id: int) -> User:
    """The user with this id, or NotFoundError."""
    user = await session.get(User, user_id) if is_valid_id(user_id) else None
    if user is None:
        raise NotFoundError(USER_NOT_FOUND)
    return user


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a write: just what permission checks need."""

    id: int
    is_superuser: bool


_PRINCIPAL = CompiledQuery(
    select(User.id, User.hashed_password, User.is_active, User.is_superuser).where(
        User.id == bindparam("id")
    )
)


async def get_principal(database: Database, claims: TokenClaims, key: str) -> Principal:
    """The active user a token names, read outside any transaction (one round trip).

    AuthenticationError if there is no such user or the token predates their current
    password; PermissionDeniedError if the user is inactive.
    """
    user_id = claims.user_id
    row = await database.fetch_one(_PRINCIPAL, id=user_id) if is_valid_id(user_id) else None
    if row is None:
        raise AuthenticationError("Could not validate credentials")
    _check_token_user(claims, key, row["hashed_password"], row["is_active"])
    return Principal(id=row["id"], is_superuser=row["is_superuser"])


async def get_token_user(session: AsyncSession, claims: TokenClaims, key: str) -> User:
    """As `get_principal`, loading the ORM `User` into `session` (for routes that change it)."""
    user = await session.get(User, claims.user_id) if is_valid_id(claims.user_id) else None
    if user is None:
        raise AuthenticationError("Could not validate credentials")
    _check_token_user(claims, key, user.hashed_password, user.is_active)
    return user


def _check_token_user(claims: TokenClaims, key: str, hashed_password: str, active: bool) -> None:
    """The rule both lookups share: the token was issued for the user's current password,
    and the user is active."""
    if not stamp_matches(claims, hashed_password, key):
        raise AuthenticationError("Could not validate credentials")
    if not active:
        raise PermissionDeniedError("Inactive user")


_USER_ID = CompiledQuery(select(User.id).where(User.id == bindparam("id")))


async def user_exists(database: Database, user_id: int) -> bool:
    """Whether a user with this id exists (one cheap indexed lookup)."""
    return is_valid_id(user_id) and await database.fetch_one(_USER_ID, id=user_id) is not None


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The user these credentials belong to.

    AuthenticationError for a wrong email or password (indistinguishable, in answer and
    in time); PermissionDeniedError for a correct password on a deactivated account.
    """
    email = email.strip().lower()
    if not (is_storable_text(email) and is_storable_text(password)):
        # No stored account can match, and neither value can be sent to the database.
        raise AuthenticationError("Incorrect email or password")
    user = await session.scalar(select(User).where(User.email == email))
    hashed = user.hashed_password if user is not None else None
    if not await verify_password_or_dummy_async(password, hashed) or user is None:
        raise AuthenticationError("Incorrect email or password")
    if not user.is_active:
        raise PermissionDeniedError("Inactive user")
    return user


async def list_users(session: AsyncSession, *, skip: int, limit: int) -> Sequence[User]:
    """A page of users ordered by id."""
    result = await session.scalars(select(User).order_by(User.id).offset(skip).limit(limit))
    return result.all()


async def update_user(session: AsyncSession, user: User, changes: dict[str, Any]) -> User:
    """Apply the given field changes; a `password` change is stored as a new hash."""
    if "password" in changes:
        user.hashed_password = await hash_password_async(changes.pop("password"))
    for field, value in changes.items():
        setattr(user, field, value)
    await session.flush()
    return user


async def delete_user(session: AsyncSession, user_id: int) -> None:
    """Delete a user; the database cascades the delete to their items."""
    if not is_valid_id(user_id):
        raise NotFoundError(USER_NOT_FOUND)
    result = await session.execute(delete(User).where(User.id == user_id).returning(User.id))
    if result.scalar_one_or_none() is None:
        raise NotFoundError(USER_NOT_FOUND)
