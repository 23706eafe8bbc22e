"""Query parameters of the item lists, and the headers of their responses.

Parameters are validated here (422 naming the parameter); cursors are decoded and
checked against the endpoint, sort and filters they are presented with; responses
carry `Link: <...>; rel="next"` while more rows exist and `X-Total-Count` on request.

The next link is built from the endpoint and the parsed parameters, percent-encoded
(RFC 3986), never from the request's URL or Host: a relative reference (RFC 8288 allows
them), or absolute under PUBLIC_BASE_URL when configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BeforeValidator
from starlette.responses import Response

from catalog.api.deps import MAX_PAGE_SIZE, MAX_SKIP
from catalog.api.responses import json_response
from catalog.config import Settings
from catalog.cursors import CursorCodec, InvalidCursorError
from catalog.errors import CatalogError
from catalog.pagination import InvalidSortError, SortKey, parse_sort
from catalog.schemas import Text, normalize_tag_name
from catalog.services.item_filters import ItemFilters
from catalog.services.item_listing import ITEM_SORT_FIELDS, ItemListQuery, ItemPage

MAX_QUERY_LENGTH = 200
# `q` needs a word of 3 letters or digits: the trigram index (pg_trgm) finds nothing to
# look up in a shorter one, and the search would read every row (a million: 0.5 s).
MIN_QUERY_WORD = 3
_QUERY_WORD = re.compile(rf"[^\W_]{{{MIN_QUERY_WORD}}}")
# The longest cursor the service issues is about 1.4 kB (a 200-character name of 4-byte
# characters, base64-encoded, with a timestamp and a price).
MAX_CURSOR_LENGTH = 2048
LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {
                "description": 'Next page: `<url>; rel="next"` (absent on the last page)',
                "schema": {"type": "string"},
            },
            "X-Total-Count": {
                "description": (
                    "Matching rows, with count=true only: exact up to COUNT_EXACT_LIMIT"
                    " (default 10000); past it, that limit as a lower bound"
                ),
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
            "X-Total-Count-Exact": {
                "description": (
                    "With count=true: `true` when X-Total-Count is the exact total,"
                    " `false` when more rows match than X-Total-Count says"
                ),
                "schema": {"type": "string", "enum": ["true", "false"]},
            },
        }
    }
}
# ISO 8601 date-times only: Pydantic alone also takes numbers as Unix times ("0.5").
_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ].*)?")


def _invalid(parameter: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", parameter), "msg": message, "input": value}]
    )


def _as_utc(value: datetime | None) -> datetime | None:
    # A timestamp without a zone is taken as UTC, the zone the service stores.
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-01:00 is past year 9999 in UTC
        raise ValueError("timestamp is out of range in UTC") from None


def _iso_8601(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_8601.fullmatch(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


def _tag_names(values: list[str]) -> list[str]:
    return [normalize_tag_name(v) for v in values]


UTCDateTime = Annotated[datetime | None, BeforeValidator(_iso_8601), AfterValidator(_as_utc)]


@dataclass(frozen=True, slots=True)
class ItemListParams:
    """Filters, sort and page of an item list, parsed from the query string."""

    filters: ItemFilters
    sort: SortKey
    skip: int | None
    limit: int
    cursor: str | None
    count: bool
    codec: CursorCodec
    base_url: str  # what the next link's path is appended to: PUBLIC_BASE_URL or root path
    count_limit: int = 10_000  # COUNT_EXACT_LIMIT

    def bind(self, endpoint: str) -> ItemListing:
        """These parameters on one endpoint ("items", "users/7"...): what cursors bind to."""
        return ItemListing(self, endpoint)


@dataclass(frozen=True, slots=True)
class ItemListing:
    """A list request on its endpoint: the service query in, the HTTP response out."""

    params: ItemListParams
    endpoint: str

    @property
    def scope(self) -> str:
        """What a cursor is bound to: the endpoint, the sort and the filters."""
        params = self.params
        return f"{self.endpoint}|{params.sort.canonical}|{params.filters.canonical()}"

    def query(self) -> ItemListQuery:
        """The service-level query; 422 for a bad cursor or a cursor given with skip."""
        params = self.params
        after = None
        if params.cursor is not None:
            if params.skip is not None:
                raise _invalid("cursor", "cursor and skip cannot be combined", params.cursor)
            try:
                after = params.codec.decode(
                    params.cursor, self.scope, params.sort, ITEM_SORT_FIELDS
                )
            except InvalidCursorError as error:
                raise _invalid("cursor", str(error), params.cursor) from None
        return ItemListQuery(
            filters=params.filters,
            sort=params.sort,
            limit=params.limit,
            skip=params.skip or 0,
            after=after,
            with_total=params.count,
            count_limit=params.count_limit,
        )

    def response(self, request: Request, page: ItemPage) -> Response:
        """The page as a JSON array, with Link (next) and X-Total-Count headers as due."""
        headers: dict[str, str] = {}
        if page.next_key is not None:
            params = self.params
            token = params.codec.encode(self.scope, params.sort, ITEM_SORT_FIELDS, page.next_key)
            headers["Link"] = f'<{self.next_page_url(request, token)}>; rel="next"'
        if page.total is not None:
            headers["X-Total-Count"] = str(page.total.count)
            headers["X-Total-Count-Exact"] = "true" if page.total.exact else "false"
        return json_response(page.items, headers=headers)

    def next_page_url(self, request: Request, cursor: str) -> str:
        """The same list after `cursor`: the route and the parameters, percent-encoded."""
        params = self.params
        filters = params.filters
        pairs: list[tuple[str, str]] = [] if filters.q is None else [("q", filters.q)]
        pairs += [("tag", tag) for tag in filters.tags]
        for name in _SCALAR_FILTERS:
            value = getattr(filters, name)
            if value is not None:
                pairs.append((name, _query_value(value)))
        pairs += [("sort", params.sort.canonical), ("limit", str(params.limit))]
        if params.count:
            pairs.append(("count", "true"))
        pairs.append(("cursor", cursor))
        values = {name: quote(str(v), safe="") for name, v in request.path_params.items()}
        path = request.scope["route"].path_format.format(**values)
        return f"{params.base_url}{path}?{urlencode(pairs, quote_via=quote, safe='')}"


_SCALAR_FILTERS = (
    "owner_id",
    "is_active",
    "min_price",
    "max_price",
    "created_after",
    "created_before",
)


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def item_list_params(
    request: Request,
    q: Annotated[
        Text | None,
        Query(
            max_length=MAX_QUERY_LENGTH,
            description=(
                "Case-insensitive name substring, with at least 3 consecutive letters or digits"
            ),
        ),
    ] = None,
    tag: Annotated[
        list[str],
        Query(description="Items carrying every given tag (repeatable, at most MAX_TAG_FILTERS)"),
        AfterValidator(_tag_names),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    owner_id: Annotated[int | None, Query()] = None,
    is_active: Annotated[bool | None, Query()] = None,
    min_price: Annotated[Decimal | None, Query(allow_inf_nan=False)] = None,
    max_price: Annotated[Decimal | None, Query(allow_inf_nan=False)] = None,
    created_after: Annotated[UTCDateTime, Query(description="ISO 8601, inclusive")] = None,
    created_before: Annotated[UTCDateTime, Query(description="ISO 8601, inclusive")] = None,
    sort: Annotated[
        str, Query(description="Fields id, name, price, created_at, updated_at; '-' = desc")
    ] = "id",
    skip: Annotated[
        int | None,
        Query(ge=0, le=MAX_SKIP, description="Rows to skip (at most MAX_OFFSET, default 10000)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = 100,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="From a Link rel=next header"),
    ] = None,
    count: Annotated[
        bool,
        Query(
            description="Send X-Total-Count (exact up to COUNT_EXACT_LIMIT) and X-Total-Count-Exact"
        ),
    ] = False,
) -> ItemListParams:
    """The list query parameters (async: FastAPI runs sync dependencies in a thread).

    The settings and the cursor signer come from the app's state here, not as
    dependencies: FastAPI 0.165 recomputes each dependency's cache key per request.
    """
    settings: Settings = request.app.state.settings
    codec: CursorCodec = request.app.state.cursor_codec
    if q is not None and not _QUERY_WORD.search(q):
        message = f"q must contain at least {MIN_QUERY_WORD} consecutive letters or digits"
        raise _invalid("q", message, q)
    if len(tag) > settings.max_tag_filters:
        # Each tag is a semi-join: their number bounds the statement's cost.
        message = f"at most {settings.max_tag_filters} tag filters"
        raise _invalid("tag", message, f"{len(tag)} tags")
    if skip is not None and skip > settings.max_offset:
        # An offset visits every skipped row; a cursor page costs the same at any depth.
        raise CatalogError(
            f"skip may be at most {settings.max_offset} (MAX_OFFSET): to page deeper, follow"
            ' the cursor in the Link rel="next" header (cursor pagination)'
        )
    base_url = (settings.public_base_url or request.scope.get("root_path", "")).rstrip("/")
    filters = ItemFilters(
        q=q,
        tags=tuple(tag),
        owner_id=owner_id,
        is_active=is_active,
        min_price=min_price,
        max_price=max_price,
        created_after=created_after,
        created_before=created_before,
    )
    try:
        sort_key = parse_sort(sort, ITEM_SORT_FIELDS)
    except InvalidSortError as error:
        raise _invalid("sort", str(error), sort) from None
    return ItemListParams(
        filters, sort_key, skip, limit, cursor, count, codec, base_url, settings.count_exact_limit
    )


ItemListDep = Annotated[ItemListParams, Depends(item_list_params)]
