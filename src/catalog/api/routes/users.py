"""Users: registration, self-service profile, and superuser administration.

Account responses are never cached (`Cache-Control: no-store`) and carry their ETag.
`{user_id}` never matches "me" (the `not_me` path convertor), so `/users/me` never reaches
the `/users/{user_id}` routes: a DELETE on it is 405, not a 422 about "me" not being an
integer.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.responses import Response

from catalog.api.admission import PerAddressGate
from catalog.api.conditional import (
    IfMatch,
    documents_if_none_match,
    expected_versions,
    if_none_match,
    is_current,
    not_modified,
    versioned_response,
)
from catalog.api.deps import (
    ClientAddressDep,
    CurrentSuperuser,
    CurrentUser,
    LoginPolicyDep,
    PageDep,
    ReadingUnitOfWorkDep,
    UnitOfWorkDep,
)
from catalog.api.idempotency import ANONYMOUS, IdempotencyKey, respond_once
from catalog.api.listing import LIST_RESPONSES, ItemListDep
from catalog.api.openapi import errors, operation_id
from catalog.api.responses import NO_STORE, json_response, no_content
from catalog.errors import PermissionDeniedError
from catalog.schemas import ItemRead, UserCreate, UserRead, UserUpdate, UserUpdateMe
from catalog.services import item_listing, users
from catalog.services.versions import Versioned


class NotMeConvertor(StringConvertor):
    """A path segment other than "me" (which names the caller's own routes)."""

    regex = "(?!me/|me$)[^/]+"


register_url_convertor("not_me", NotMeConvertor())
router = APIRouter(prefix="/users", tags=["users"], generate_unique_id_function=operation_id)
_NOT_FOUND = (404, "No such user")
_BUSY = (503, "Too many password checks in progress")


@router.post(
    "",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(
        (409, "Email already registered"),
        (429, "Too many registrations in progress from this address"),
        _BUSY,
    ),
)
async def register(
    request: Request,
    data: UserCreate,
    uow: UnitOfWorkDep,
    key: IdempotencyKey,
    address: ClientAddressDep,
) -> Response:
    """Create an account (anyone may register; a few at a time from one address)."""

    async def write() -> Response:
        return json_response(await users.register(uow, data), status_code=201, headers=NO_STORE)

    # No account yet: one shared scope, whose fingerprint holds the whole body (password
    # included), so only the same registration can be replayed.
    gate: PerAddressGate = request.app.state.registrations
    async with gate.admit(address):
        return await respond_once(request, uow, key, scope=ANONYMOUS, body=data, write=write)


@router.get("/me", response_model=UserRead, openapi_extra=documents_if_none_match())
async def read_me(user: CurrentUser, request: Request) -> Response:
    """The caller's own account, with its ETag."""
    if is_current(if_none_match(request), user.id, user.version):
        return not_modified(user.id, user.version)
    return versioned_response(Versioned(user.account, user.version), user.id, headers=NO_STORE)


@router.patch(
    "/me",
    response_model=UserRead,
    responses=errors(
        (403, "Inactive account, or the current password is wrong"),
        (429, "Too many wrong current passwords for this account or from this address"),
        _BUSY,
    ),
)
async def update_me(
    data: UserUpdateMe,
    user: CurrentUser,
    uow: UnitOfWorkDep,
    policy: LoginPolicyDep,
    address: ClientAddressDep,
    if_match: IfMatch,
) -> Response:
    """Change the caller's name or password (a new password needs `current_password`)."""
    account = await users.update_own_account(
        uow,
        user.id,
        data.changes(),
        current_password=data.current_password,
        address=address,
        policy=policy,
        expected=expected_versions(if_match, user.id),
    )
    return versioned_response(account, user.id, headers=NO_STORE)


@router.get("", response_model=list[UserRead])
async def list_users(_: CurrentSuperuser, uow: ReadingUnitOfWorkDep, page: PageDep) -> Response:
    """All users, ordered by id (superusers only)."""
    accounts = await users.list_users(uow, skip=page.skip, limit=page.limit)
    return json_response(accounts, headers=NO_STORE)


@router.get(
    "/{user_id:not_me}",
    response_model=UserRead,
    responses=errors(_NOT_FOUND),
    openapi_extra=documents_if_none_match(),
)
async def read_user(
    user_id: int, caller: CurrentUser, uow: ReadingUnitOfWorkDep, request: Request
) -> Response:
    """A user: yourself, or anyone if you are a superuser."""
    if user_id == caller.id:
        account = Versioned(caller.account, caller.version)
    elif not caller.is_superuser:  # 403 whether or not the id exists: no enumeration
        raise PermissionDeniedError
    else:
        account = await users.get_user(uow, user_id)
    if is_current(if_none_match(request), user_id, account.version):
        return not_modified(user_id, account.version)
    return versioned_response(account, user_id, headers=NO_STORE)


@router.patch(
    "/{user_id:not_me}",
    response_model=UserRead,
    responses=errors(_NOT_FOUND, (409, "A superuser cannot demote or deactivate themselves")),
)
async def update_user(
    user_id: int, data: UserUpdate, caller: CurrentSuperuser, uow: UnitOfWorkDep, if_match: IfMatch
) -> Response:
    """Change a user's name, active flag or superuser flag (superusers only)."""
    expected = expected_versions(if_match, user_id)
    account = await users.update_user(uow, user_id, data.changes(), actor=caller, expected=expected)
    return versioned_response(account, user_id, headers=NO_STORE)


@router.delete(
    "/{user_id:not_me}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(_NOT_FOUND, (409, "A superuser cannot delete themselves")),
)
async def delete_user(
    user_id: int, caller: CurrentSuperuser, uow: UnitOfWorkDep, if_match: IfMatch
) -> Response:
    """Delete a user and, with them, their items (superusers only)."""
    expected = expected_versions(if_match, user_id)
    await users.delete_user(uow, user_id, actor=caller, expected=expected)
    return no_content()


@router.get(
    "/{user_id:not_me}/items",
    response_model=list[ItemRead],
    responses={**LIST_RESPONSES, **errors(_NOT_FOUND)},
)
async def list_user_items(
    user_id: int, request: Request, uow: ReadingUnitOfWorkDep, params: ItemListDep
) -> Response:
    """A user's items: filtered, sorted (default by id) and paged like GET /items."""
    listing = params.bind(f"users/{user_id}")
    page = await item_listing.list_user_items(uow, user_id, listing.query())
    return listing.response(request, page)
