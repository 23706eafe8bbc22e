"""Request dependencies: sessions (unit of work), the settings, the current user, paging.

Every dependency is `async def`: FastAPI would run a sync one in the threadpool, a
thread hand-off per call. Sessions use `scope="function"`: their exit code (commit, close)
runs when the endpoint returns and *before* the response is sent, so a failed commit can
never follow a 2xx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.config import Settings
from catalog.db.session import Database
from catalog.errors import AuthenticationError, PermissionDeniedError
from catalog.models import User
from catalog.security import TokenClaims, decode_access_token
from catalog.services.common import MAX_ID
from catalog.services.users import Principal, get_principal, get_token_user

MAX_PAGE_SIZE = 100
# Past any table's size; beyond it PostgreSQL would reject the (int4) OFFSET parameter.
MAX_SKIP = MAX_ID


async def get_database(request: Request) -> Database:
    """The app's database (engines and session factories)."""
    database: Database = request.app.state.database
    return database


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_signing_key(request: Request) -> str:
    """The token signing key, resolved once when the app was built."""
    key: str = request.app.state.signing_key
    return key


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SigningKeyDep = Annotated[str, Depends(get_signing_key)]


async def get_async_db(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """A write session: one transaction, committed before the response is sent."""
    async with database.unit_of_work() as session:
        yield session


async def get_read_db(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """A read session on an autocommit connection: no BEGIN/ROLLBACK round trips."""
    async with database.read_only() as session:
        yield session


AsyncSessionDep = Annotated[AsyncSession, Depends(get_async_db, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_db, scope="function")]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


def _claims(token: str | None, key: str) -> TokenClaims:
    claims = decode_access_token(token, key) if token else None
    if claims is None:
        raise AuthenticationError("Could not validate credentials")
    return claims


async def _authenticated(session: AsyncSession, key: str, token: str | None) -> User:
    return await get_token_user(session, _claims(token, key), key)


async def get_current_user(session: AsyncSessionDep, key: SigningKeyDep, token: TokenDep) -> User:
    """The active user the bearer token names, looked up in the request's write session."""
    return await _authenticated(session, key, token)


async def get_current_user_read_only(
    session: ReadSessionDep, key: SigningKeyDep, token: TokenDep
) -> User:
    """As `get_current_user`, for endpoints that only read."""
    return await _authenticated(session, key, token)


async def get_current_principal(
    database: DatabaseDep, key: SigningKeyDep, token: TokenDep
) -> Principal:
    """The active caller, for writes that need only its id and role (no ORM, no BEGIN)."""
    return await get_principal(database, _claims(token, key), key)


def _superuser(user: User) -> User:
    if not user.is_superuser:
        raise PermissionDeniedError("Not enough permissions")
    return user


async def get_current_superuser(user: Annotated[User, Depends(get_current_user)]) -> User:
    """The current user, who must be a superuser (403 otherwise)."""
    return _superuser(user)


async def get_current_superuser_read_only(
    user: Annotated[User, Depends(get_current_user_read_only)],
) -> User:
    """As `get_current_superuser`, for endpoints that only read."""
    return _superuser(user)


CurrentPrincipal = Annotated[Principal, Depends(get_current_principal)]
CurrentUser = Annotated[User, Depends(get_current_user)]
CurrentUserReadOnly = Annotated[User, Depends(get_current_user_read_only)]
CurrentSuperuser = Annotated[User, Depends(get_current_superuser)]
CurrentSuperuserReadOnly = Annotated[User, Depends(get_current_superuser_read_only)]


@dataclass(frozen=True, slots=True)
class Page:
    """Offset pagination parameters shared by the plain list endpoints."""

    skip: int
    limit: int


# Async on purpose: FastAPI runs sync dependencies (and classes) in the threadpool.
async def page_params(
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP, description="Rows to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = 100,
) -> Page:
    """`skip` and `limit` from the query string."""
    return Page(skip, limit)


PageDep = Annotated[Page, Depends(page_params)]
