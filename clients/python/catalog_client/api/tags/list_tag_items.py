import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.item_read import ItemRead
from ...models.validation_error_body import ValidationErrorBody
from ...types import UNSET, Response, Unset


def _get_kwargs(
    name: str,
    *,
    q: None | str | Unset = UNSET,
    tag: list[str] | Unset = UNSET,
    owner_id: int | None | Unset = UNSET,
    is_active: bool | None | Unset = UNSET,
    min_price: float | None | str | Unset = UNSET,
    max_price: float | None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: str | Unset = "id",
    skip: int | None | Unset = UNSET,
    limit: int | Unset = 100,
    cursor: None | str | Unset = UNSET,
    count: bool | Unset = False,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    json_q: None | str | Unset
    if isinstance(q, Unset):
        json_q = UNSET
    else:
        json_q = q
    params["q"] = json_q

    json_tag: list[str] | Unset = UNSET
    if not isinstance(tag, Unset):
        json_tag = tag

    params["tag"] = json_tag

    json_owner_id: int | None | Unset
    if isinstance(owner_id, Unset):
        json_owner_id = UNSET
    else:
        json_owner_id = owner_id
    params["owner_id"] = json_owner_id

    json_is_active: bool | None | Unset
    if isinstance(is_active, Unset):
        json_is_active = UNSET
    else:
        json_is_active = is_active
    params["is_active"] = json_is_active

    json_min_price: float | None | str | Unset
    if isinstance(min_price, Unset):
        json_min_price = UNSET
    else:
        json_min_price = min_price
    params["min_price"] = json_min_price

    json_max_price: float | None | str | Unset
    if isinstance(max_price, Unset):
        json_max_price = UNSET
    else:
        json_max_price = max_price
    params["max_price"] = json_max_price

    json_created_after: None | str | Unset
    if isinstance(created_after, Unset):
        json_created_after = UNSET
    elif isinstance(created_after, datetime.datetime):
        json_created_after = created_after.isoformat()
    else:
        json_created_after = created_after
    params["created_after"] = json_created_after

    json_created_before: None | str | Unset
    if isinstance(created_before, Unset):
        json_created_before = UNSET
    elif isinstance(created_before, datetime.datetime):
        json_created_before = created_before.isoformat()
    else:
        json_created_before = created_before
    params["created_before"] = json_created_before

    params["sort"] = sort

    json_skip: int | None | Unset
    if isinstance(skip, Unset):
        json_skip = UNSET
    else:
        json_skip = skip
    params["skip"] = json_skip

    params["limit"] = limit

    json_cursor: None | str | Unset
    if isinstance(cursor, Unset):
        json_cursor = UNSET
    else:
        json_cursor = cursor
    params["cursor"] = json_cursor

    params["count"] = count

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/tags/{name}/items".format(
            name=quote(str(name), safe=""),
        ),
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | ValidationErrorBody | list[ItemRead] | None:
    if response.status_code == 200:
        response_200 = []
        _response_200 = response.json()
        for response_200_item_data in _response_200:
            response_200_item = ItemRead.from_dict(response_200_item_data)

            response_200.append(response_200_item)

        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 414:
        response_414 = ErrorBody.from_dict(response.json())

        return response_414

    if response.status_code == 422:
        response_422 = ValidationErrorBody.from_dict(response.json())

        return response_422

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | ValidationErrorBody | list[ItemRead]]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    q: None | str | Unset = UNSET,
    tag: list[str] | Unset = UNSET,
    owner_id: int | None | Unset = UNSET,
    is_active: bool | None | Unset = UNSET,
    min_price: float | None | str | Unset = UNSET,
    max_price: float | None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: str | Unset = "id",
    skip: int | None | Unset = UNSET,
    limit: int | Unset = 100,
    cursor: None | str | Unset = UNSET,
    count: bool | Unset = False,
) -> Response[ErrorBody | ValidationErrorBody | list[ItemRead]]:
    """List Tag Items

     Items carrying this tag: filtered, sorted (default by id) and paged like GET /items.

    Args:
        name (str):
        q (None | str | Unset): Case-insensitive name substring, with at least 3 consecutive
            letters or digits
        tag (list[str] | Unset): Items carrying every given tag (repeatable, at most
            MAX_TAG_FILTERS)
        owner_id (int | None | Unset):
        is_active (bool | None | Unset):
        min_price (float | None | str | Unset):
        max_price (float | None | str | Unset):
        created_after (datetime.datetime | None | Unset): ISO 8601, inclusive
        created_before (datetime.datetime | None | Unset): ISO 8601, inclusive
        sort (str | Unset): Fields id, name, price, created_at, updated_at; '-' = desc Default:
            'id'.
        skip (int | None | Unset): Rows to skip (at most MAX_OFFSET, default 10000)
        limit (int | Unset): Page size Default: 100.
        cursor (None | str | Unset): From a Link rel=next header
        count (bool | Unset): Send X-Total-Count (exact up to COUNT_EXACT_LIMIT) and X-Total-
            Count-Exact Default: False.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ValidationErrorBody | list[ItemRead]]
    """

    kwargs = _get_kwargs(
        name=name,
        q=q,
        tag=tag,
        owner_id=owner_id,
        is_active=is_active,
        min_price=min_price,
        max_price=max_price,
        created_after=created_after,
        created_before=created_before,
        sort=sort,
        skip=skip,
        limit=limit,
        cursor=cursor,
        count=count,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    q: None | str | Unset = UNSET,
    tag: list[str] | Unset = UNSET,
    owner_id: int | None | Unset = UNSET,
    is_active: bool | None | Unset = UNSET,
    min_price: float | None | str | Unset = UNSET,
    max_price: float | None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: str | Unset = "id",
    skip: int | None | Unset = UNSET,
    limit: int | Unset = 100,
    cursor: None | str | Unset = UNSET,
    count: bool | Unset = False,
) -> ErrorBody | ValidationErrorBody | list[ItemRead] | None:
    """List Tag Items

     Items carrying this tag: filtered, sorted (default by id) and paged like GET /items.

    Args:
        name (str):
        q (None | str | Unset): Case-insensitive name substring, with at least 3 consecutive
            letters or digits
        tag (list[str] | Unset): Items carrying every given tag (repeatable, at most
            MAX_TAG_FILTERS)
        owner_id (int | None | Unset):
        is_active (bool | None | Unset):
        min_price (float | None | str | Unset):
        max_price (float | None | str | Unset):
        created_after (datetime.datetime | None | Unset): ISO 8601, inclusive
        created_before (datetime.datetime | None | Unset): ISO 8601, inclusive
        sort (str | Unset): Fields id, name, price, created_at, updated_at; '-' = desc Default:
            'id'.
        skip (int | None | Unset): Rows to skip (at most MAX_OFFSET, default 10000)
        limit (int | Unset): Page size Default: 100.
        cursor (None | str | Unset): From a Link rel=next header
        count (bool | Unset): Send X-Total-Count (exact up to COUNT_EXACT_LIMIT) and X-Total-
            Count-Exact Default: False.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ValidationErrorBody | list[ItemRead]
    """

    return sync_detailed(
        name=name,
        client=client,
        q=q,
        tag=tag,
        owner_id=owner_id,
        is_active=is_active,
        min_price=min_price,
        max_price=max_price,
        created_after=created_after,
        created_before=created_before,
        sort=sort,
        skip=skip,
        limit=limit,
        cursor=cursor,
        count=count,
    ).parsed


async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    q: None | str | Unset = UNSET,
    tag: list[str] | Unset = UNSET,
    owner_id: int | None | Unset = UNSET,
    is_active: bool | None | Unset = UNSET,
    min_price: float | None | str | Unset = UNSET,
    max_price: float | None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: str | Unset = "id",
    skip: int | None | Unset = UNSET,
    limit: int | Unset = 100,
    cursor: None | str | Unset = UNSET,
    count: bool | Unset = False,
) -> Response[ErrorBody | ValidationErrorBody | list[ItemRead]]:
    """List Tag Items

     Items carrying this tag: filtered, sorted (default by id) and paged like GET /items.

    Args:
        name (str):
        q (None | str | Unset): Case-insensitive name substring, with at least 3 consecutive
            letters or digits
        tag (list[str] | Unset): Items carrying every given tag (repeatable, at most
            MAX_TAG_FILTERS)
        owner_id (int | None | Unset):
        is_active (bool | None | Unset):
        min_price (float | None | str | Unset):
        max_price (float | None | str | Unset):
        created_after (datetime.datetime | None | Unset): ISO 8601, inclusive
        created_before (datetime.datetime | None | Unset): ISO 8601, inclusive
        sort (str | Unset): Fields id, name, price, created_at, updated_at; '-' = desc Default:
            'id'.
        skip (int | None | Unset): Rows to skip (at most MAX_OFFSET, default 10000)
        limit (int | Unset): Page size Default: 100.
        cursor (None | str | Unset): From a Link rel=next header
        count (bool | Unset): Send X-Total-Count (exact up to COUNT_EXACT_LIMIT) and X-Total-
            Count-Exact Default: False.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ValidationErrorBody | list[ItemRead]]
    """

    kwargs = _get_kwargs(
        name=name,
        q=q,
        tag=tag,
        owner_id=owner_id,
        is_active=is_active,
        min_price=min_price,
        max_price=max_price,
        created_after=created_after,
        created_before=created_before,
        sort=sort,
        skip=skip,
        limit=limit,
        cursor=cursor,
        count=count,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    q: None | str | Unset = UNSET,
    tag: list[str] | Unset = UNSET,
    owner_id: int | None | Unset = UNSET,
    is_active: bool | None | Unset = UNSET,
    min_price: float | None | str | Unset = UNSET,
    max_price: float | None | str | Unset = UNSET,
    created_after: datetime.datetime | None | Unset = UNSET,
    created_before: datetime.datetime | None | Unset = UNSET,
    sort: str | Unset = "id",
    skip: int | None | Unset = UNSET,
    limit: int | Unset = 100,
    cursor: None | str | Unset = UNSET,
    count: bool | Unset = False,
) -> ErrorBody | ValidationErrorBody | list[ItemRead] | None:
    """List Tag Items

     Items carrying this tag: filtered, sorted (default by id) and paged like GET /items.

    Args:
        name (str):
        q (None | str | Unset): Case-insensitive name substring, with at least 3 consecutive
            letters or digits
        tag (list[str] | Unset): Items carrying every given tag (repeatable, at most
            MAX_TAG_FILTERS)
        owner_id (int | None | Unset):
        is_active (bool | None | Unset):
        min_price (float | None | str | Unset):
        max_price (float | None | str | Unset):
        created_after (datetime.datetime | None | Unset): ISO 8601, inclusive
        created_before (datetime.datetime | None | Unset): ISO 8601, inclusive
        sort (str | Unset): Fields id, name, price, created_at, updated_at; '-' = desc Default:
            'id'.
        skip (int | None | Unset): Rows to skip (at most MAX_OFFSET, default 10000)
        limit (int | Unset): Page size Default: 100.
        cursor (None | str | Unset): From a Link rel=next header
        count (bool | Unset): Send X-Total-Count (exact up to COUNT_EXACT_LIMIT) and X-Total-
            Count-Exact Default: False.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ValidationErrorBody | list[ItemRead]
    """

    return (
        await asyncio_detailed(
            name=name,
            client=client,
            q=q,
            tag=tag,
            owner_id=owner_id,
            is_active=is_active,
            min_price=min_price,
            max_price=max_price,
            created_after=created_after,
            created_before=created_before,
            sort=sort,
            skip=skip,
            limit=limit,
            cursor=cursor,
            count=count,
        )
    ).parsed
