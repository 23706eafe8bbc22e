"""The baseline: the item endpoints of the Catalog API in plain Starlette + asyncpg.

It answers the same requests with the same JSON (and the same `Link` / `X-Total-Count`
headers) as the service, with hand-written SQL: one statement per read, orjson, asyncpg's
prepared-statement cache, no transaction around single statements and no pool reset
query on release. It is the practical ceiling for Python here; the benchmark reports the
service as a ratio of it.

Scope: `GET /items`, `GET /items/{id}`, `POST /items`, `PATCH /items/{id}`, `GET /health`.
Run it like the service:

    DATABASE_URL=postgresql://... SECRET_KEY=... uvicorn --factory bench.baseline:create_app
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MAX_ID = 2**31 - 1
MAX_PAGE_SIZE = 100
MAX_QUERY_LENGTH = 200
MAX_TAGS_PER_ITEM = 50
PRICE_LIMIT = Decimal(10) ** 10
_CENT = Decimal("0.01")
_JSON_OPTIONS = orjson.OPT_UTC_Z
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})

ITEM_COLUMNS = (
    "i.id, i.name, i.description, i.price, i.is_active, i.created_at, i.updated_at, i.owner_id"
)
TAG_NAMES = (
    "COALESCE((SELECT array_agg(t.name ORDER BY t.name) FROM item_tags it"
    " JOIN tags t ON t.id = it.tag_id WHERE it.item_id = i.id), '{}')"
)
SELECT_ITEM = f"SELECT {ITEM_COLUMNS}, {TAG_NAMES} FROM items i WHERE i.id = $1"
SELECT_USER = "SELECT is_active, is_superuser FROM users WHERE id = $1"
ITEM_EXISTS = "SELECT 1 FROM items WHERE id = $1"
INSERT_ITEM = (
    "INSERT INTO items AS i (name, description, price, is_active, owner_id)"
    f" VALUES ($1, $2, $3, $4, $5) RETURNING {ITEM_COLUMNS}"
)
# One statement: the item, any missing tags, the links. `n` lets the caller notice a tag
# that a concurrent request created after this statement's snapshot (then it links it).
INSERT_ITEM_WITH_TAGS = f"""
WITH new_item AS ({INSERT_ITEM}),
new_tags AS (
    INSERT INTO tags (name) SELECT unnest($6::varchar[]) ON CONFLICT (name) DO NOTHING
    RETURNING id
),
linked AS (
    INSERT INTO item_tags (item_id, tag_id)
    SELECT new_item.id, t.id FROM new_item,
        (SELECT id FROM new_tags UNION ALL SELECT id FROM tags WHERE name = ANY($6::varchar[])) t
    RETURNING 1
)
SELECT new_item.*, (SELECT count(*) FROM linked) AS n FROM new_item
"""
LINK_TAGS = (
    "INSERT INTO item_tags (item_id, tag_id) SELECT $1, id FROM tags"
    " WHERE name = ANY($2::varchar[]) ON CONFLICT DO NOTHING"
)
CREATE_TAGS = "INSERT INTO tags (name) SELECT unnest($1::varchar[]) ON CONFLICT (name) DO NOTHING"
UNLINK_TAGS = "DELETE FROM item_tags WHERE item_id = $1"

# Sortable fields: column, nullable (NULL sorts as larger than any value), cursor decoder.
SORT_FIELDS: dict[str, tuple[str, bool, Callable[[Any], Any]]] = {
    "id": ("i.id", False, int),
    "name": ("i.name", False, str),
    "price": ("i.price", False, str),  # numeric parameters are bound as text (exact)
    "created_at": ("i.created_at", False, datetime.fromisoformat),
    "updated_at": ("i.updated_at", True, datetime.fromisoformat),
}
ROW_INDEX = {"id": 0, "name": 1, "price": 3, "created_at": 5, "updated_at": 6}
EDITABLE = ("name", "description", "price", "is_active")


class Invalid(Exception):
    """A request value is malformed: answered 422 in FastAPI's shape."""

    def __init__(self, where: str, name: str, message: str) -> None:
        super().__init__(message)
        self.where, self.name, self.message = where, name, message

    def response(self) -> Response:
        detail = [{"type": "value_error", "loc": [self.where, self.name], "msg": self.message}]
        return _json({"detail": detail}, 422)


def _json(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content, option=_JSON_OPTIONS),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _error(status: int, detail: str) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _json({"detail": detail}, status, headers)


def _item(row: Any, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": row[0],
        "name": row[1],
        "description": row[2],
        "price": row[3],
        "is_active": row[4],
        "created_at": row[5],
        "updated_at": row[6],
        "owner_id": row[7],
        "tags": row[8] if tags is None else tags,
    }


# --- validation -----------------------------------------------------------------------


def _int(
    params: QueryParams, name: str, low: int | None = None, high: int | None = None
) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Invalid("query", name, "Input should be a valid integer") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid("query", name, f"Input should be between {low} and {high}")
    return value


def _bool(params: QueryParams, name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise Invalid("query", name, "Input should be a valid boolean")


def _decimal(params: QueryParams, name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise Invalid("query", name, "Input should be a valid decimal") from None
    if not value.is_finite():
        raise Invalid("query", name, "Input should be a finite number")
    return value


def _timestamp(params: QueryParams, name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid("query", name, "Input should be a valid datetime") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tag_name(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise Invalid(where, name, "Input should be a valid string")
    tag = value.strip().lower()
    if not 1 <= len(tag) <= 50 or "/" in tag or not tag.isprintable():
        raise Invalid(where, name, "tag names are 1 to 50 characters, without '/'")
    return tag


def _sort(raw: str) -> list[tuple[str, bool]]:
    fields: list[tuple[str, bool]] = []
    for part in raw.split(","):
        part = part.strip()
        desc = part.startswith("-")
        name = part[1:] if desc else part
        if name not in SORT_FIELDS or any(name == seen for seen, _ in fields):
            raise Invalid("query", "sort", f"invalid sort field {name!r}")
        fields.append((name, desc))
        if name == "id":
            break
    if fields[-1][0] != "id":
        fields.append(("id", False))
    return fields


def _price(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Invalid("body", "price", "Input should be a valid decimal")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise Invalid("body", "price", "Input should be a valid decimal") from None
    if not price.is_finite() or not 0 <= price < PRICE_LIMIT:
        raise Invalid("body", "price", "price must be >= 0 and < 10^10")
    if price != price.quantize(_CENT):
        raise Invalid("body", "price", "Decimal input should have no more than 2 decimal places")
    return price


def _text(data: dict[str, Any], name: str, low: int, high: int) -> str:
    value = data[name]
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise Invalid("body", name, f"Input should be a string of {low} to {high} characters")
    return value


def _item_fields(body: bytes, *, partial: bool) -> dict[str, Any]:
    """The validated fields of an item body (POST: all required ones; PATCH: those given)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Invalid("body", "", "JSON decode error") from None
    if not isinstance(data, dict):
        raise Invalid("body", "", "Input should be a valid dictionary")
    unknown = set(data) - {*EDITABLE, "tags"}
    if unknown:
        raise Invalid("body", sorted(unknown)[0], "Extra inputs are not permitted")
    if not partial:
        for name in ("name", "price"):
            if name not in data:
                raise Invalid("body", name, "Field required")
    for name, value in data.items():
        if value is None and name != "description":
            raise Invalid("body", name, f"{name} may not be null")
    fields: dict[str, Any] = {}
    if "name" in data:
        fields["name"] = _text(data, "name", 1, 200)
    if "description" in data:
        fields["description"] = (
            None if data["description"] is None else _text(data, "description", 0, 2000)
        )
    if "price" in data:
        fields["price"] = str(_price(data["price"]))
    if "is_active" in data:
        if not isinstance(data["is_active"], bool):
            raise Invalid("body", "is_active", "Input should be a valid boolean")
        fields["is_active"] = data["is_active"]
    if "tags" in data:
        tags = data["tags"]
        if not isinstance(tags, list) or len(tags) > MAX_TAGS_PER_ITEM:
            raise Invalid("body", "tags", "Input should be a list of at most 50 tag names")
        fields["tags"] = sorted({_tag_name(t, "body", "tags") for t in tags})
    return fields


# --- lists ----------------------------------------------------------------------------


class ListQuery:
    """A parsed `GET /items`: SQL conditions and parameters, sort, page, cursor scope."""

    def __init__(self, params: QueryParams) -> None:
        self.where: list[str] = []
        self.args: list[Any] = []
        scope: dict[str, Any] = {}
        q = params.get("q")
        if q is not None:
            if len(q) > MAX_QUERY_LENGTH:
                raise Invalid("query", "q", "String should have at most 200 characters")
            if q:
                escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                self._add("i.name ILIKE {}", f"%{escaped}%")
                scope["q"] = q
        tags = sorted({_tag_name(t, "query", "tag") for t in params.getlist("tag")})
        for tag in tags:
            self._add(
                "EXISTS (SELECT 1 FROM item_tags it JOIN tags t ON t.id = it.tag_id"
                " WHERE it.item_id = i.id AND t.name = {})",
                tag,
            )
        if tags:
            scope["tags"] = tags
        owner_id = _int(params, "owner_id")
        if owner_id is not None:
            # An id no row can have matches nothing (and never reaches int4).
            if 0 < owner_id <= MAX_ID:
                self._add("i.owner_id = {}", owner_id)
            else:
                self.where.append("false")
            scope["owner_id"] = owner_id
        is_active = _bool(params, "is_active")
        if is_active is not None:
            self.where.append("i.is_active" if is_active else "NOT i.is_active")
            scope["is_active"] = is_active
        for name, condition in (("min_price", "i.price >= {}"), ("max_price", "i.price <= {}")):
            price = _decimal(params, name)
            if price is not None:
                self._add(condition, str(price))
                scope[name] = str(price)
        for name, condition in (
            ("created_after", "i.created_at >= {}"),
            ("created_before", "i.created_at <= {}"),
        ):
            moment = _timestamp(params, name)
            if moment is not None:
                self._add(condition, moment)
                scope[name] = moment.isoformat()
        self.sort = _sort(params.get("sort", "id"))
        self.skip = _int(params, "skip", 0)
        limit = _int(params, "limit", 1, MAX_PAGE_SIZE)
        self.limit = MAX_PAGE_SIZE if limit is None else limit
        self.count = bool(_bool(params, "count"))
        self.cursor = params.get("cursor")
        if self.cursor is not None and self.skip is not None:
            raise Invalid("query", "cursor", "cursor and skip cannot be combined")
        self.scope = orjson.dumps(
            [",".join(("-" if d else "") + n for n, d in self.sort), scope],
            option=orjson.OPT_SORT_KEYS,
        )

    def _add(self, condition: str, value: Any) -> None:
        self.args.append(value)
        self.where.append(condition.format(f"${len(self.args)}"))

    def keyset(self, values: list[Any]) -> None:
        """Restrict to the rows after the row whose sort key is `values`."""
        branches: list[str] = []
        prefix: list[str] = []
        for (name, desc), value in zip(self.sort, values, strict=True):
            column, nullable, decode = SORT_FIELDS[name]
            if value is None:
                after = f"{column} IS NOT NULL" if desc else "false"
                equal = f"{column} IS NULL"
            else:
                self.args.append(decode(value))
                param = f"${len(self.args)}"
                after = f"{column} {'<' if desc else '>'} {param}"
                if nullable and not desc:
                    after = f"({after} OR {column} IS NULL)"
                equal = f"{column} = {param}"
            branches.append(" AND ".join([*prefix, after]))
            prefix.append(equal)
        self.where.append("(" + " OR ".join(f"({b})" for b in branches) + ")")

    def page_sql(self) -> str:
        order = ", ".join(
            f"{SORT_FIELDS[n][0]} {'DESC' if d else 'ASC'}"
            + (" NULLS FIRST" if d and SORT_FIELDS[n][1] else "")
            for n, d in self.sort
        )
        where = f" WHERE {' AND '.join(self.where)}" if self.where else ""
        n = len(self.args)
        # The page is cut first, then tags are attached: a tag subquery in the same SELECT
        # would also run for every row OFFSET skips.
        page = (
            f"SELECT {ITEM_COLUMNS} FROM items i{where}"
            f" ORDER BY {order} LIMIT ${n + 1} OFFSET ${n + 2}"
        )
        return f"SELECT {ITEM_COLUMNS}, {TAG_NAMES} FROM ({page}) i ORDER BY {order}"

    def count_sql(self, conditions: int) -> str:
        where = " AND ".join(self.where[:conditions])
        return "SELECT count(*) FROM items i" + (f" WHERE {where}" if where else "")

    def next_key(self, row: Any) -> list[Any]:
        values = [row[ROW_INDEX[name]] for name, _ in self.sort]
        return [v.isoformat() if isinstance(v, datetime) else v for v in values]


class CursorCodec:
    """HMAC-signed cursors bound to the query's sort and filters."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"baseline-cursor:" + secret.encode()).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, scope: bytes, values: list[Any]) -> str:
        payload = orjson.dumps([hashlib.sha256(scope).hexdigest()[:16], values])
        mac = self._mac(payload)
        return (
            base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
            + "."
            + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        )

    def decode(self, token: str, scope: bytes, size: int) -> list[Any]:
        try:
            body, mac = token.split(".")
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            signature = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
            fingerprint, values = orjson.loads(payload)
        except (ValueError, TypeError):
            raise Invalid("query", "cursor", "cursor is malformed") from None
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise Invalid("query", "cursor", "cursor is invalid")
        if fingerprint != hashlib.sha256(scope).hexdigest()[:16]:
            raise Invalid("query", "cursor", "cursor was issued for another query")
        if not isinstance(values, list) or len(values) != size:
            raise Invalid("query", "cursor", "cursor is malformed")
        return values


# --- the application ------------------------------------------------------------------


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to reset (asyncpg already rolls back open transactions)."""


async def _init_connection(connection: asyncpg.Connection) -> None:
    # numeric as text <-> float: prices leave as JSON numbers, exact values go in as text.
    await connection.set_type_codec(
        "numeric", encoder=str, decoder=float, schema="pg_catalog", format="text"
    )


class Baseline:
    """Request handlers sharing one asyncpg pool and the JWT key."""

    def __init__(
        self,
        dsn: str,
        secret_key: str,
        pool_min: int,
        pool_max: int,
        server_settings: dict[str, str],
        max_offset: int | None = None,
    ) -> None:
        self.dsn = dsn
        self.max_offset = max_offset
        self.server_settings = server_settings
        self.secret_key = secret_key
        self.pool_min, self.pool_max = pool_min, pool_max
        self.cursors = CursorCodec(secret_key)
        self.pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self.pool_min,
            max_size=self.pool_max,
            init=_init_connection,
            reset=_keep_session,
            # The same session settings as the service's connections (the run passes them),
            # so the comparison is about the Python side, not PostgreSQL tuning.
            server_settings=self.server_settings,
        )
        try:
            yield
        finally:
            await self.pool.close()

    @property
    def _pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "the lifespan has not run"
        return self.pool

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def read_item(self, request: Request) -> Response:
        item_id: int = request.path_params["item_id"]
        row = await self._pool.fetchrow(SELECT_ITEM, item_id) if item_id <= MAX_ID else None
        if row is None:
            return _error(404, "Item not found")
        return _json(_item(row))

    async def list_items(self, request: Request) -> Response:
        try:
            query = ListQuery(request.query_params)
            filters, filter_args = len(query.where), len(query.args)
            if query.cursor is not None:
                query.keyset(self.cursors.decode(query.cursor, query.scope, len(query.sort)))
        except Invalid as error:
            return error.response()
        if self.max_offset is not None and (query.skip or 0) > self.max_offset:
            # The service's documented maximum offset (MAX_OFFSET), mirrored.
            return _error(400, f"skip may be at most {self.max_offset}: use cursor pagination")
        sql = query.page_sql()
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(sql, *query.args, query.limit + 1, query.skip or 0)
            total = None
            if query.count:
                total = await connection.fetchval(
                    query.count_sql(filters), *query.args[:filter_args]
                )
        headers: dict[str, str] = {}
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            token = self.cursors.encode(query.scope, query.next_key(rows[-1]))
            url = request.url.remove_query_params("skip").include_query_params(cursor=token)
            headers["Link"] = f'<{url}>; rel="next"'
        if total is not None:
            headers["X-Total-Count"] = str(total)
        return _json([_item(row) for row in rows], headers=headers)

    async def _user(self, request: Request, connection: asyncpg.Connection) -> Any:
        """(is_superuser, user id) of the bearer, or the error Response to send."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user_id = None
        if scheme.lower() == "bearer" and token:
            try:
                claims = jwt.decode(
                    token,
                    self.secret_key,
                    algorithms=["HS256"],
                    options={"require": ["sub", "exp"]},
                )
                user_id = int(claims["sub"])
            except (jwt.InvalidTokenError, ValueError, TypeError):
                user_id = None
        row = None
        if user_id is not None and 0 < user_id <= MAX_ID:
            row = await connection.fetchrow(SELECT_USER, user_id)
        if row is None:
            return _error(401, "Could not validate credentials")
        if not row[0]:
            return _error(403, "Inactive user")
        return row[1], user_id

    async def create_item(self, request: Request) -> Response:
        try:
            fields = _item_fields(await request.body(), partial=False)
        except Invalid as error:
            return error.response()
        async with self._pool.acquire() as connection:
            user = await self._user(request, connection)
            if isinstance(user, Response):
                return user
            _, owner_id = user
            tags: list[str] = fields.get("tags") or []
            values = (
                fields["name"],
                fields.get("description"),
                fields["price"],
                fields.get("is_active", True),
                owner_id,
            )
            if not tags:
                row = await connection.fetchrow(INSERT_ITEM, *values)
            else:
                row = await connection.fetchrow(INSERT_ITEM_WITH_TAGS, *values, tags)
                if row["n"] != len(tags):  # a tag committed by someone else meanwhile
                    await connection.execute(LINK_TAGS, row[0], tags)
        return _json(_item(row, tags), 201)

    async def update_item(self, request: Request) -> Response:
        item_id: int = request.path_params["item_id"]
        try:
            fields = _item_fields(await request.body(), partial=True)
        except Invalid as error:
            return error.response()
        async with self._pool.acquire() as connection:
            user = await self._user(request, connection)
            if isinstance(user, Response):
                return user
            if item_id > MAX_ID:
                return _error(404, "Item not found")
            is_superuser, user_id = user
            tags: list[str] | None = fields.pop("tags", None)
            args: list[Any] = [item_id]
            sets = []
            for name in EDITABLE:
                if name in fields:
                    args.append(fields[name])
                    sets.append(f"{name} = ${len(args)}")
            sets.append("updated_at = now()")
            guard = ""
            if not is_superuser:
                args.append(user_id)
                guard = f" AND i.owner_id = ${len(args)}"
            sql = f"UPDATE items AS i SET {', '.join(sets)} WHERE i.id = $1{guard} RETURNING "
            if tags is None:
                row = await connection.fetchrow(sql + f"{ITEM_COLUMNS}, {TAG_NAMES}", *args)
            else:
                async with connection.transaction():
                    row = await connection.fetchrow(sql + ITEM_COLUMNS, *args)
                    if row is not None:
                        await connection.execute(UNLINK_TAGS, item_id)
                        if tags:
                            await connection.execute(CREATE_TAGS, tags)
                            await connection.execute(LINK_TAGS, item_id, tags)
            if row is None:
                if await connection.fetchval(ITEM_EXISTS, item_id) is None:
                    return _error(404, "Item not found")
                return _error(403, "Not enough permissions")
        return _json(_item(row, tags))


def _dsn(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgres") else url


def create_app(
    database_url: str | None = None,
    secret_key: str | None = None,
    pool_min: int | None = None,
    pool_max: int | None = None,
    server_settings: dict[str, str] | None = None,
) -> Starlette:
    """The baseline app. Arguments default to the environment: DATABASE_URL, SECRET_KEY,
    BASELINE_POOL_MIN / BASELINE_POOL_MAX, BASELINE_SERVER_SETTINGS (a JSON object),
    BASELINE_MAX_OFFSET (refuse larger offsets with 400, as the service does past its
    MAX_OFFSET; unset: no maximum)."""
    max_offset = os.environ.get("BASELINE_MAX_OFFSET")
    if server_settings is None:
        server_settings = orjson.loads(os.environ.get("BASELINE_SERVER_SETTINGS", "{}"))
    baseline = Baseline(
        _dsn(database_url or os.environ["DATABASE_URL"]),
        secret_key or os.environ["SECRET_KEY"],
        pool_min or int(os.environ.get("BASELINE_POOL_MIN", "10")),
        pool_max or int(os.environ.get("BASELINE_POOL_MAX", "30")),
        server_settings or {},
        int(max_offset) if max_offset else None,
    )
    routes = [
        Route("/health", baseline.health),
        Route("/items", baseline.list_items, methods=["GET"]),
        Route("/items", baseline.create_item, methods=["POST"]),
        Route("/items/{item_id:int}", baseline.read_item, methods=["GET"]),
        Route("/items/{item_id:int}", baseline.update_item, methods=["PATCH"]),
    ]
    app = Starlette(routes=routes, lifespan=baseline.lifespan)
    app.state.baseline = baseline
    return app
