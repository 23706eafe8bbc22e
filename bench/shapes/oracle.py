"""The expected answer of a list request, in plain SQL written independently of the service.

The request is read back from its path and query string (not from the service's parsed
parameters) and turned into one straightforward statement: `IN` subqueries for tags,
`strpos`/`instr` on lower-cased names for `q`, explicit NULLS FIRST/LAST, the `id`
tie-breaker, LIMIT/OFFSET for every page (a cursor page k is rows k*limit.. of the order).
The documented semantics, not the service's SQL: bounds inclusive, NULL `updated_at`
larger than any value, `q` a case-insensitive substring.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy import Connection, bindparam, text

DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class ListRequest:
    """What a list URL asks for, read independently of the service."""

    owner_scope: int | None = None
    tag_scope: str | None = None
    q: str | None = None
    tags: tuple[str, ...] = ()
    equals: dict[str, Any] = field(default_factory=dict)  # owner_id, is_active
    ranges: list[tuple[str, str, Any]] = field(default_factory=list)  # (column, op, value)
    sort: tuple[tuple[str, bool], ...] = (("id", False),)
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    count: bool = False


@dataclass(frozen=True)
class Expected:
    """One page as plain SQL sees it."""

    ids: list[int]
    tags: dict[int, list[str]]
    has_next: bool
    total: int | None  # the exact number of matches, when the request asks for a count


def _sort(raw: str) -> tuple[tuple[str, bool], ...]:
    fields: list[tuple[str, bool]] = []
    for part in raw.split(","):
        part = part.strip()
        fields.append((part.lstrip("-"), part.startswith("-")))
        if part.lstrip("-") == "id":
            return tuple(fields)
    return (*fields, ("id", False))


def _bool(value: str) -> bool:
    return value.lower() in {"true", "1", "yes", "on"}


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse(url: str) -> ListRequest:
    """The request a list URL (path and query) makes."""
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.strip("/").split("/")]
    owner_scope = int(segments[1]) if segments[0] == "users" else None
    tag_scope = segments[1] if segments[0] == "tags" else None
    values: dict[str, Any] = {"tags": []}
    equals: dict[str, Any] = {}
    ranges: list[tuple[str, str, Any]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "tag":
            values["tags"].append(value.strip().lower())
        elif key == "owner_id":
            equals["owner_id"] = int(value)
        elif key == "is_active":
            equals["is_active"] = _bool(value)
        elif key in ("min_price", "max_price"):
            ranges.append(("price", ">=" if key == "min_price" else "<=", Decimal(value)))
        elif key in ("created_after", "created_before"):
            op = ">=" if key == "created_after" else "<="
            ranges.append(("created_at", op, _timestamp(value)))
        elif key == "sort":
            values["sort"] = _sort(value)
        elif key in ("skip", "limit"):
            values[key] = int(value)
        elif key == "count":
            values["count"] = _bool(value)
        elif key == "q":
            values["q"] = value
    values["tags"] = tuple(values["tags"])
    return ListRequest(owner_scope, tag_scope, equals=equals, ranges=ranges, **values)


def _bind(dialect: str, value: Any) -> Any:
    """A value as each database compares it: SQLite keeps timestamps as ISO text (UTC,
    SQLAlchemy's format) and numerics as REAL."""
    if dialect != "sqlite":
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, Decimal):
        return float(value)
    return value


def _tag_members(param: str) -> str:
    return (
        "id IN (SELECT it.item_id FROM item_tags it JOIN tags t ON t.id = it.tag_id"
        f" WHERE t.name = :{param})"
    )


def where(request: ListRequest, dialect: str) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (never empty) and its parameters."""
    clauses: list[str] = ["1 = 1"]
    params: dict[str, Any] = {}
    if request.owner_scope is not None:
        clauses.append("owner_id = :scope_owner")
        params["scope_owner"] = request.owner_scope
    if request.tag_scope is not None:
        clauses.append(_tag_members("scope_tag"))
        params["scope_tag"] = request.tag_scope
    if request.q:
        find = "strpos" if dialect == "postgresql" else "instr"
        clauses.append(f"{find}(lower(name), lower(:q)) > 0")
        params["q"] = request.q
    for i, tag in enumerate(request.tags):
        clauses.append(_tag_members(f"tag{i}"))
        params[f"tag{i}"] = tag
    for name, value in request.equals.items():
        clauses.append(f"{name} = :{name}")
        params[name] = value
    for i, (column, op, value) in enumerate(request.ranges):
        clauses.append(f"{column} {op} :r{i}")
        params[f"r{i}"] = _bind(dialect, value)
    return " AND ".join(clauses), params


def order(request: ListRequest) -> str:
    """ORDER BY: NULLs larger than any value (last ascending, first descending)."""
    return ", ".join(
        f"{name} DESC NULLS FIRST" if desc else f"{name} ASC NULLS LAST"
        for name, desc in request.sort
    )


def _tags_of(conn: Connection, ids: list[int]) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return {}
    statement = text(
        "SELECT it.item_id, t.name FROM item_tags it JOIN tags t ON t.id = it.tag_id"
        " WHERE it.item_id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    for item_id, name in conn.execute(statement, {"ids": ids}):
        tags[int(item_id)].append(str(name))
    return {i: sorted(tags.get(i, [])) for i in ids}


def expected_page(conn: Connection, request: ListRequest, page: int = 0) -> Expected:
    """Page `page` (0 = the first) of the request, by OFFSET; and the total if asked."""
    clause, params = where(request, conn.dialect.name)
    offset = request.skip + page * request.limit
    rows = conn.execute(
        text(
            f"SELECT id FROM items WHERE {clause} ORDER BY {order(request)}"
            " LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": request.limit + 1, "offset": offset},
    ).all()
    ids = [int(row[0]) for row in rows]
    total = None
    if request.count:
        total = int(
            conn.execute(text(f"SELECT count(*) FROM items WHERE {clause}"), params).scalar() or 0
        )
    page_ids = ids[: request.limit]
    return Expected(page_ids, _tags_of(conn, page_ids), len(ids) > request.limit, total)


def scope_exists(conn: Connection, request: ListRequest) -> bool:
    """False when the endpoint's user or tag does not exist (the service answers 404)."""
    value: int | str
    if request.owner_scope is not None:
        sql, value = "SELECT count(*) FROM users WHERE id = :v", request.owner_scope
    elif request.tag_scope is not None:
        sql, value = "SELECT count(*) FROM tags WHERE name = :v", request.tag_scope
    else:
        return True
    return bool(conn.execute(text(sql), {"v": value}).scalar())
