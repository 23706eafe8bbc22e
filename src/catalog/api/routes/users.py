"""Users: registration, self-service profile, and superuser administration."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from starlette.responses import Response

from catalog.api.deps import (
    AsyncSessionDep,
    CurrentSuperuser,
    CurrentSuperuserReadOnly,
    CurrentUser,
    CurrentUserReadOnly,
    DatabaseDep,
    PageDep,
    ReadSessionDep,
)
from catalog.api.listing import LIST_RESPONSES, CursorCodecDep, ItemListDep, page_response
from catalog.api.responses import no_content
from catalog.errors import PermissionDeniedError
from catalog.models import User
from catalog.schemas import ItemRead, UserCreate, UserRead, UserUpdate, UserUpdateMe
from catalog.services import item_listing, users

router = APIRouter(prefix="/users", tags=["users"])


@router.post(
    "",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "Email already registered"}},
)
async def register(data: UserCreate, session: AsyncSessionDep) -> User:
    """Create an account (anyone may register)."""
    return await users.create_user(session, data)


@router.get("/me", response_model=UserRead)
async def read_me(user: CurrentUserReadOnly) -> User:
    """The caller's own account."""
    return user


@router.patch("/me", response_model=UserRead)
async def update_me(data: UserUpdateMe, user: CurrentUser, session: AsyncSessionDep) -> User:
    """Change the caller's name or password."""
    return await users.update_user(session, user, data.changes())


@router.get("", response_model=list[UserRead])
async def list_users(
    _: CurrentSuperuserReadOnly, session: ReadSessionDep, page: PageDep
) -> list[User]:
    """All users, ordered by id (superusers only)."""
    return list(await users.list_users(session, skip=page.skip, limit=page.limit))


@router.get("/{user_id}", response_model=UserRead)
async def read_user(user_id: int, caller: CurrentUserReadOnly, session: ReadSessionDep) -> User:
    """A user: yourself, or anyone if you are a superuser."""
    if user_id == caller.id:
        return caller
    if not caller.is_superuser:  # 403 whether or not the id exists: no enumeration
        raise PermissionDeniedError("Not enough permissions")
    return await users.get_user(session, user_id)


@router.patch("/{user_id}", response_model=UserRead)
async def update_user(
    user_id: int, data: UserUpdate, _: CurrentSuperuser, session: AsyncSessionDep
) -> User:
    """Change a user's name, active flag or superuser flag (superusers only)."""
    user = await users.get_user(session, user_id)
    return await users.update_user(session, user, data.changes())


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_user(user_id: int, _: CurrentSuperuser, session: AsyncSessionDep) -> Response:
    """Delete a user and, with them, their items (superusers only)."""
    await users.delete_user(session, user_id)
    return no_content()


@router.get(
    "/{user_id}/items",
    response_model=list[ItemRead],
    responses={**LIST_RESPONSES, 404: {"description": "No such user"}},
)
async def list_user_items(
    user_id: int,
    request: Request,
    database: DatabaseDep,
    params: ItemListDep,
    codec: CursorCodecDep,
) -> Response:
    """A user's items: filtered, sorted (default by id) and paged like GET /items."""
    endpoint = f"users/{user_id}"
    query = params.to_query(endpoint, codec)
    page = await item_listing.list_user_items(database, user_id, query)
    return page_response(request, page, params, endpoint, codec)
