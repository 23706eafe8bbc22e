"""Users: registration, self-service profile, and superuser administration."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from starlette.responses import Response

from catalog.api.conditional import (
    IfMatch,
    IfNoneMatch,
    expected_versions,
    is_current,
    not_modified,
    versioned_response,
)
from catalog.api.deps import CurrentSuperuser, CurrentUser, PageDep, UnitOfWorkDep
from catalog.api.idempotency import ANONYMOUS, IDEMPOTENT, IdempotencyKey, respond_once
from catalog.api.listing import LIST_RESPONSES, ItemListDep
from catalog.api.responses import json_response, no_content
from catalog.errors import PermissionDeniedError
from catalog.schemas import ItemRead, UserCreate, UserRead, UserUpdate, UserUpdateMe
from catalog.services import item_listing, users
from catalog.services.versions import Versioned

router = APIRouter(prefix="/users", tags=["users"])


@router.post(
    "",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "Email already registered"}, **IDEMPOTENT},
)
async def register(
    request: Request, data: UserCreate, uow: UnitOfWorkDep, key: IdempotencyKey
) -> Response:
    """Create an account (anyone may register)."""

    async def write() -> Response:
        return json_response(await users.register(uow, data), status_code=201)

    # No account yet: one shared scope, whose fingerprint holds the whole body (password
    # included), so only the same registration can be replayed.
    body = data.model_dump(mode="json")
    return await respond_once(request, uow, key, scope=ANONYMOUS, body=body, write=write)


@router.get("/me", response_model=UserRead)
async def read_me(user: CurrentUser, if_none_match: IfNoneMatch = None) -> Response:
    """The caller's own account, with its ETag."""
    if is_current(if_none_match, user.id, user.version):
        return not_modified(user.id, user.version)
    return versioned_response(Versioned(user.account, user.version), user.id)


@router.patch("/me", response_model=UserRead)
async def update_me(
    data: UserUpdateMe, user: CurrentUser, uow: UnitOfWorkDep, if_match: IfMatch
) -> Response:
    """Change the caller's name or password."""
    expected = expected_versions(if_match, user.id)
    account = await users.update_user(uow, user.id, data.changes(), expected=expected)
    return versioned_response(account, user.id)


@router.get("", response_model=list[UserRead])
async def list_users(_: CurrentSuperuser, uow: UnitOfWorkDep, page: PageDep) -> Response:
    """All users, ordered by id (superusers only)."""
    return json_response(await users.list_users(uow, skip=page.skip, limit=page.limit))


@router.get("/{user_id}", response_model=UserRead)
async def read_user(
    user_id: int, caller: CurrentUser, uow: UnitOfWorkDep, if_none_match: IfNoneMatch = None
) -> Response:
    """A user: yourself, or anyone if you are a superuser."""
    if user_id == caller.id:
        account = Versioned(caller.account, caller.version)
    elif not caller.is_superuser:  # 403 whether or not the id exists: no enumeration
        raise PermissionDeniedError
    else:
        account = await users.get_user(uow, user_id)
    if is_current(if_none_match, user_id, account.version):
        return not_modified(user_id, account.version)
    return versioned_response(account, user_id)


@router.patch("/{user_id}", response_model=UserRead)
async def update_user(
    user_id: int, data: UserUpdate, _: CurrentSuperuser, uow: UnitOfWorkDep, if_match: IfMatch
) -> Response:
    """Change a user's name, active flag or superuser flag (superusers only)."""
    expected = expected_versions(if_match, user_id)
    account = await users.update_user(uow, user_id, data.changes(), expected=expected)
    return versioned_response(account, user_id)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_user(
    user_id: int, _: CurrentSuperuser, uow: UnitOfWorkDep, if_match: IfMatch
) -> Response:
    """Delete a user and, with them, their items (superusers only)."""
    await users.delete_user(uow, user_id, expected=expected_versions(if_match, user_id))
    return no_content()


@router.get(
    "/{user_id}/items",
    response_model=list[ItemRead],
    responses={**LIST_RESPONSES, 404: {"description": "No such user"}},
)
async def list_user_items(
    user_id: int, request: Request, uow: UnitOfWorkDep, params: ItemListDep
) -> Response:
    """A user's items: filtered, sorted (default by id) and paged like GET /items."""
    listing = params.bind(f"users/{user_id}")
    page = await item_listing.list_user_items(uow, user_id, listing.query())
    return listing.response(request, page)
