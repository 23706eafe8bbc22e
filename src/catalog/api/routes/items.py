"""Items: public reads; writes by the owner or a superuser."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from starlette.responses import Response

from catalog.api.conditional import (
    IfMatch,
    documents_if_none_match,
    expected_versions,
    if_none_match,
    is_current,
    not_modified,
    versioned_response,
)
from catalog.api.deps import CurrentUser, ReadingUnitOfWorkDep, UnitOfWorkDep
from catalog.api.idempotency import IdempotencyKey, respond_once
from catalog.api.listing import LIST_RESPONSES, ItemListDep
from catalog.api.openapi import errors, operation_id
from catalog.api.responses import no_content
from catalog.schemas import ItemCreate, ItemRead, ItemUpdate
from catalog.services import item_listing, items

router = APIRouter(prefix="/items", tags=["items"], generate_unique_id_function=operation_id)

_NOT_FOUND = errors((404, "Item not found"))
_WRITE_ERRORS = errors((403, "Not the owner, or inactive"), (404, "Item not found"))


@router.get("", response_model=list[ItemRead], responses=LIST_RESPONSES)
async def list_items(request: Request, uow: ReadingUnitOfWorkDep, params: ItemListDep) -> Response:
    """Items (active or not): filtered, sorted (default by id) and paged."""
    listing = params.bind("items")
    return listing.response(request, await item_listing.list_items(uow, listing.query()))


@router.post("", response_model=ItemRead, status_code=status.HTTP_201_CREATED)
async def create_item(
    request: Request,
    data: ItemCreate,
    caller: CurrentUser,
    uow: UnitOfWorkDep,
    key: IdempotencyKey,
) -> Response:
    """Create an item owned by the caller; unknown tag names are created."""

    async def write() -> Response:
        item = await items.create_item(uow, caller, data)
        item_id = item.value["id"]
        return versioned_response(item, item_id, 201, {"Location": f"/items/{item_id}"})

    return await respond_once(request, uow, key, scope=caller.scope, body=data, write=write)


@router.get(
    "/{item_id}",
    response_model=ItemRead,
    responses=_NOT_FOUND,
    openapi_extra=documents_if_none_match(),
)
async def read_item(item_id: int, uow: ReadingUnitOfWorkDep, request: Request) -> Response:
    """One item, with its ETag; 304 while the client's copy (If-None-Match) is current."""
    item = await items.get_item(uow, item_id)
    if is_current(if_none_match(request), item_id, item.version):
        return not_modified(item_id, item.version)
    return versioned_response(item, item_id)


async def _update(
    item_id: int, data: ItemUpdate, caller: CurrentUser, uow: UnitOfWorkDep, if_match: IfMatch
) -> Response:
    expected = expected_versions(if_match, item_id)
    item = await items.update_item(uow, caller, item_id, data.changes(), expected=expected)
    return versioned_response(item, item_id)


router.put(
    "/{item_id}",
    response_model=ItemRead,
    responses=_WRITE_ERRORS,
    name="update_item",
    summary="Update Item",
    description="Change the given fields only; `tags` replaces the tag set.",
)(_update)
router.patch(
    "/{item_id}",
    response_model=ItemRead,
    responses=_WRITE_ERRORS,
    name="patch_item",
    summary="Patch Item",
    description="Same as PUT: change the given fields only.",
)(_update)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_WRITE_ERRORS,
)
async def delete_item(
    item_id: int, caller: CurrentUser, uow: UnitOfWorkDep, if_match: IfMatch
) -> Response:
    """Delete an item (owner or superuser)."""
    await items.delete_item(uow, caller, item_id, expected=expected_versions(if_match, item_id))
    return no_content()
