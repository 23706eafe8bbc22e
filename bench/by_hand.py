"""FastAPI by hand: the item endpoints as a careful FastAPI user would write them (issue 15).

The comparator a FastAPI user would measure Catalog against: FastAPI routes over an asyncpg
pool, query parameters and bodies declared and validated by FastAPI, Pydantic response
models (FastAPI validates and serializes every response through them), a bearer-token
dependency on the writes, and none of the service's guards (no limits, deadline, request
ids, security headers, ETags, idempotency, metrics or logs). The SQL and the JSON are the
baseline's (`bench/baseline.py`, reused from there), so the three servers answer alike.

    DATABASE_URL=postgresql://... SECRET_KEY=... uvicorn --factory bench.by_hand:create_app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
import jwt
import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from bench.baseline import (
    EDITABLE,
    INSERT_ITEM,
    INSERT_ITEM_WITH_TAGS,
    ITEM_COLUMNS,
    ITEM_EXISTS,
    LINK_TAGS,
    MAX_ID,
    SELECT_ITEM,
    SELECT_USER,
    TAG_NAMES,
    CursorCodec,
    Invalid,
    ListQuery,
    _dsn,
    _init_connection,
    _item,
    _keep_session,
)


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: float
    is_active: bool
    created_at: datetime
    updated_at: datetime | None
    owner_id: int
    tags: list[str]


TagName = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[^/]+$")]


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    price: Decimal = Field(ge=0, lt=Decimal(10) ** 10, decimal_places=2)
    is_active: bool = True
    tags: list[TagName] = Field(default_factory=list, max_length=50)


class ItemPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    price: Decimal | None = Field(default=None, ge=0, lt=Decimal(10) ** 10, decimal_places=2)
    is_active: bool | None = None
    tags: list[TagName] | None = Field(default=None, max_length=50)


def _tags(tags: list[str]) -> list[str]:
    return sorted({tag.strip().lower() for tag in tags})


class State:
    """The pool and the keys, set up by the lifespan."""

    def __init__(self, dsn: str, secret_key: str, pool_min: int, pool_max: int) -> None:
        self.dsn, self.secret_key = dsn, secret_key
        self.pool_min, self.pool_max = pool_min, pool_max
        self.server_settings: dict[str, str] = orjson.loads(
            os.environ.get("BASELINE_SERVER_SETTINGS", "{}")
        )
        self.cursors = CursorCodec(secret_key)
        self.pool: asyncpg.Pool | None = None
        # The baseline's (and the service's) documented maximum offset, if the run has one.
        max_offset = os.environ.get("BASELINE_MAX_OFFSET")
        self.max_offset = int(max_offset) if max_offset else None


_bearer = HTTPBearer(auto_error=False)


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> tuple[bool, int]:
    """(is_superuser, user id) of an active user, or 401/403."""
    state: State = request.app.state.by_hand
    user_id = None
    if credentials is not None:
        try:
            claims = jwt.decode(
                credentials.credentials,
                state.secret_key,
                algorithms=["HS256"],
                options={"require": ["sub", "exp"]},
            )
            user_id = int(claims["sub"])
        except (jwt.InvalidTokenError, ValueError, TypeError):
            user_id = None
    row = None
    if user_id is not None and 0 < user_id <= MAX_ID and state.pool is not None:
        row = await state.pool.fetchrow(SELECT_USER, user_id)
    if row is None or user_id is None:
        raise HTTPException(
            401, "Could not validate credentials", headers={"WWW-Authenticate": "Bearer"}
        )
    if not row[0]:
        raise HTTPException(403, "Inactive user")
    return row[1], user_id


User = Annotated[tuple[bool, int], Depends(current_user)]


def create_app(
    database_url: str | None = None,
    secret_key: str | None = None,
    pool_min: int | None = None,
    pool_max: int | None = None,
    server_settings: dict[str, str] | None = None,
) -> FastAPI:
    """The app; arguments default to the environment, as the baseline's do."""
    state = State(
        _dsn(database_url or os.environ["DATABASE_URL"]),
        secret_key or os.environ["SECRET_KEY"],
        pool_min or int(os.environ.get("BASELINE_POOL_MIN", "10")),
        pool_max or int(os.environ.get("BASELINE_POOL_MAX", "30")),
    )
    if server_settings is not None:
        state.server_settings = server_settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.pool = await asyncpg.create_pool(
            state.dsn,
            min_size=state.pool_min,
            max_size=state.pool_max,
            init=_init_connection,
            reset=_keep_session,
            server_settings=state.server_settings,
        )
        try:
            yield
        finally:
            await state.pool.close()

    app = FastAPI(lifespan=lifespan)

    def pool() -> asyncpg.Pool:
        assert state.pool is not None, "the lifespan has not run"
        return state.pool

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/items/{item_id}", response_model=ItemOut)
    async def read_item(item_id: int) -> Any:
        row = await pool().fetchrow(SELECT_ITEM, item_id) if 0 < item_id <= MAX_ID else None
        if row is None:
            raise HTTPException(404, "Item not found")
        return _item(row)

    @app.get("/items", response_model=list[ItemOut])
    async def list_items(
        request: Request,
        response: Response,
        q: Annotated[str | None, Query(max_length=200)] = None,
        tag: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
        owner_id: int | None = None,
        is_active: bool | None = None,
        min_price: Decimal | None = None,
        max_price: Decimal | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        sort: str = "id",
        skip: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 100,
        count: bool = False,
        cursor: str | None = None,
    ) -> Any:
        # The parameters are validated above; the SQL is built as the baseline builds it.
        try:
            query = ListQuery(request.query_params)
            filters, filter_args = len(query.where), len(query.args)
            if query.cursor is not None:
                query.keyset(state.cursors.decode(query.cursor, query.scope, len(query.sort)))
        except Invalid as error:
            raise HTTPException(422, error.message) from None
        if state.max_offset is not None and (query.skip or 0) > state.max_offset:
            # What the baseline answers past its maximum (issue 14's bounded deep_skip).
            raise HTTPException(
                400, f"skip may be at most {state.max_offset}: use cursor pagination"
            )
        async with pool().acquire() as connection:
            rows = await connection.fetch(
                query.page_sql(), *query.args, query.limit + 1, query.skip or 0
            )
            total = None
            if query.count:
                total = await connection.fetchval(
                    query.count_sql(filters), *query.args[:filter_args]
                )
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            token = state.cursors.encode(query.scope, query.next_key(rows[-1]))
            url = request.url.remove_query_params("skip").include_query_params(cursor=token)
            response.headers["Link"] = f'<{url}>; rel="next"'
        if total is not None:
            response.headers["X-Total-Count"] = str(total)
        return [_item(row) for row in rows]

    @app.post("/items", response_model=ItemOut, status_code=201)
    async def create_item(body: ItemIn, user: User) -> Any:
        tags = _tags(body.tags)
        values = (body.name, body.description, str(body.price), body.is_active, user[1])
        if not tags:
            row = await pool().fetchrow(INSERT_ITEM, *values)
        else:
            row = await pool().fetchrow(INSERT_ITEM_WITH_TAGS, *values, tags)
            if row["n"] != len(tags):  # a tag committed by someone else meanwhile
                await pool().execute(LINK_TAGS, row[0], tags)
        return _item(row, tags)

    @app.patch("/items/{item_id}", response_model=ItemOut)
    async def update_item(item_id: int, body: ItemPatch, user: User) -> Any:
        if not 0 < item_id <= MAX_ID:
            raise HTTPException(404, "Item not found")
        given = body.model_dump(exclude_unset=True)
        if any(given[name] is None for name in given if name != "description"):
            raise HTTPException(422, "only description may be null")
        if "tags" in given:  # the bench patches descriptions only; tags as the baseline
            raise HTTPException(422, "tags are not patched here")
        if "price" in given:
            given["price"] = str(given["price"])
        is_superuser, user_id = user
        args: list[Any] = [item_id]
        sets = []
        for name in EDITABLE:
            if name in given:
                args.append(given[name])
                sets.append(f"{name} = ${len(args)}")
        sets.append("updated_at = now()")
        guard = ""
        if not is_superuser:
            args.append(user_id)
            guard = f" AND i.owner_id = ${len(args)}"
        sql = (
            f"UPDATE items AS i SET {', '.join(sets)} WHERE i.id = $1{guard}"
            f" RETURNING {ITEM_COLUMNS}, {TAG_NAMES}"
        )
        async with pool().acquire() as connection:
            row = await connection.fetchrow(sql, *args)
            if row is None:
                if await connection.fetchval(ITEM_EXISTS, item_id) is None:
                    raise HTTPException(404, "Item not found")
                raise HTTPException(403, "Not enough permissions")
        return _item(row)

    app.state.by_hand = state
    return app
