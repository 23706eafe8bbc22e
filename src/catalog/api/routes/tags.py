"""Tags: public listing, creation by any user, deletion by superusers."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from starlette.responses import Response

from catalog.api.deps import (
    CurrentSuperuser,
    CurrentUser,
    PageDep,
    ReadingUnitOfWorkDep,
    UnitOfWorkDep,
)
from catalog.api.idempotency import IdempotencyKey, respond_once
from catalog.api.listing import LIST_RESPONSES, ItemListDep
from catalog.api.openapi import errors, operation_id
from catalog.api.responses import json_response, no_content
from catalog.errors import NotFoundError
from catalog.schemas import ItemRead, TagCreate, TagRead, normalize_tag_name
from catalog.services import item_listing, tags

router = APIRouter(prefix="/tags", tags=["tags"], generate_unique_id_function=operation_id)


def _path_tag(name: str) -> str:
    """A tag name from the URL, normalized; one that cannot exist is simply not found."""
    try:
        return normalize_tag_name(name)
    except ValueError:
        raise NotFoundError(tags.TAG_NOT_FOUND) from None


@router.get("", response_model=list[TagRead])
async def list_tags(uow: ReadingUnitOfWorkDep, page: PageDep) -> Response:
    """Tags ordered by name, with the number of items carrying each."""
    return json_response(await tags.list_tags(uow, skip=page.skip, limit=page.limit))


@router.post(
    "",
    response_model=TagRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors((409, "Tag already exists")),
)
async def create_tag(
    request: Request, data: TagCreate, caller: CurrentUser, uow: UnitOfWorkDep, key: IdempotencyKey
) -> Response:
    """Create a tag (names are stripped and lower-cased)."""

    async def write() -> Response:
        return json_response(await tags.create_tag(uow, data.name), status_code=201)

    return await respond_once(request, uow, key, scope=caller.scope, body=data, write=write)


@router.get(
    "/{name}/items",
    response_model=list[ItemRead],
    responses={**LIST_RESPONSES, **errors((404, "No such tag"))},
)
async def list_tag_items(
    name: str, request: Request, uow: ReadingUnitOfWorkDep, params: ItemListDep
) -> Response:
    """Items carrying this tag: filtered, sorted (default by id) and paged like GET /items."""
    tag = _path_tag(name)
    listing = params.bind(f"tags/{tag}")
    page = await item_listing.list_tag_items(uow, tag, listing.query())
    return listing.response(request, page)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors((403, "Not a superuser, or inactive"), (404, "No such tag")),
)
async def delete_tag(name: str, _: CurrentSuperuser, uow: UnitOfWorkDep) -> Response:
    """Delete a tag and remove it from every item (superusers only)."""
    await tags.delete_tag(uow, _path_tag(name))
    return no_content()
