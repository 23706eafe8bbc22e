"""Request dependencies: the unit of work, the settings, the current user, paging.

Every dependency is `async def`: FastAPI would run a sync one in the threadpool, a
thread hand-off per call. The writing unit of work exits (commit, release) when the
endpoint returns and *before* the response is sent, so a failed commit can never follow a
2xx: where a `scope="function"` dependency with `yield` would exit, but as a plain
dependency that puts its exit on that same stack. FastAPI resolves a plain dependency far
faster than one with `yield` (a generator, two context managers and an anyio cancel scope:
about 70 µs of CPU per request). Routes that only read (GETs, and the token's user
lookup) take the reading one: it has no exit step at all.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer

from catalog.api.consistency import remember_position, route_reads
from catalog.config import Settings
from catalog.db.database import Database
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import AuthenticationError, PermissionDeniedError
from catalog.logs import user_id_var
from catalog.models import MAX_ID
from catalog.security import decode_access_token
from catalog.services.login_throttle import LoginPolicy
from catalog.services.users import INVALID_TOKEN, AuthenticatedUser, current_user

MAX_PAGE_SIZE = 100
# Past any table's size; beyond it PostgreSQL would reject the (int4) OFFSET parameter.
MAX_SKIP = MAX_ID


# FastAPI's stack of the endpoint call (0.118+): closed once the endpoint has returned (or
# raised), before the response is sent. It is what `scope="function"` dependencies with
# `yield` exit on; tests/api/test_unit_of_work.py proves the commit still comes first.
_FUNCTION_STACK = "fastapi_function_astack"


async def get_unit_of_work(request: Request) -> UnitOfWork:
    """The request's unit of work: reads, writes, and one commit before the response."""
    database: Database = request.app.state.database
    uow = database.unit_of_work()
    if database.replicas is not None:
        route_reads(request, uow)
    stack: AsyncExitStack = request.scope[_FUNCTION_STACK]

    async def leave(
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        # As `async with uow` around the endpoint: commit, or roll back after an error.
        await uow.__aexit__(exc_type, error, traceback)
        if error is None and database.replicas is not None:
            remember_position(request, uow)
        return False  # an error goes on to the error handlers

    await uow.__aenter__()
    stack.push_async_exit(leave)
    return uow


async def get_reading_unit_of_work(request: Request) -> UnitOfWork:
    """The unit of work of a route that only reads: it refuses writes, so it never holds
    a transaction, a connection or a writer turn past a statement, and needs no exit."""
    return _reading_unit_of_work(request)


_READING_UNIT = "catalog.reading_unit_of_work"


def _reading_unit_of_work(request: Request) -> UnitOfWork:
    # One per request, whoever asks (the route, the token check): with replicas, a unit
    # checks the client's X-Catalog-LSN position once, and that may take a round trip.
    uow: UnitOfWork | None = request.scope.get(_READING_UNIT)
    if uow is None:
        database: Database = request.app.state.database
        uow = request.scope[_READING_UNIT] = database.unit_of_work(reads_only=True)
        if database.replicas is not None:
            route_reads(request, uow)
    return uow


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_signing_key(request: Request) -> str:
    """The token signing key, resolved once when the app was built."""
    key: str = request.app.state.signing_key
    return key


async def get_login_policy(request: Request) -> LoginPolicy:
    """The login throttling policy, built once from the settings."""
    policy: LoginPolicy = request.app.state.login_policy
    return policy


async def get_client_address(request: Request) -> str:
    """The client's address as the server saw it: the ASGI peer. Behind a proxy, uvicorn
    sets it from X-Forwarded-For only for TRUSTED_PROXIES (`catalog serve`)."""
    client = request.client
    return client.host if client is not None else "unknown"


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
ReadingUnitOfWorkDep = Annotated[UnitOfWork, Depends(get_reading_unit_of_work)]
LoginPolicyDep = Annotated[LoginPolicy, Depends(get_login_policy)]
ClientAddressDep = Annotated[str, Depends(get_client_address)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SigningKeyDep = Annotated[str, Depends(get_signing_key)]

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


async def get_current_user(request: Request, token: TokenDep) -> AuthenticatedUser:
    """The active user the bearer token names (one read, no transaction).

    The key and the reading unit of work are taken here, not as dependencies of their
    own: FastAPI 0.165 recomputes each dependency's cache key on every request, and
    this one is on every authenticated request.
    """
    key: str = request.app.state.signing_key
    claims = decode_access_token(token, key) if token else None
    if claims is None:
        raise AuthenticationError(INVALID_TOKEN)
    user = await current_user(_reading_unit_of_work(request), claims, key)
    user_id_var.set(user.id)  # for the request's access log line
    return user


CurrentUser = Annotated[AuthenticatedUser, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> AuthenticatedUser:
    """The current user, who must be a superuser (403 otherwise)."""
    if not user.is_superuser:
        raise PermissionDeniedError
    return user


CurrentSuperuser = Annotated[AuthenticatedUser, Depends(get_current_superuser)]


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
