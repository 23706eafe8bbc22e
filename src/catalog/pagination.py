"""Sorting and keyset pagination, independent of any one resource.

A sort is a whitelist of fields, each ascending or descending, always completed by
ascending `id` as the tie-breaker, so the order is total and pages never repeat or skip
a row. NULLs sort as larger than any value. A keyset cursor holds the sort key of the
last row served; the next page is "rows strictly after it" in that order, which an index
on (column, id) answers in time independent of the page's depth.

Cursors are opaque to clients and signed (HMAC): the payload also names the endpoint,
sort and filters it was issued for, so a cursor replayed elsewhere is rejected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, false, or_, true, tuple_
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import UnaryExpression

CURSOR_VERSION = 1


class InvalidSortError(ValueError):
    """The sort parameter names an unknown field or repeats one."""


class InvalidCursorError(ValueError):
    """The cursor is malformed, tampered with, or was issued for another query."""


@dataclass(frozen=True)
class SortField:
    """One sortable column: how to read it from SQL and to (de)serialize its values."""

    column: ColumnElement[Any] | QueryableAttribute[Any]
    nullable: bool = False
    decode: Callable[[Any], Any] = lambda value: value
    encode: Callable[[Any], Any] = lambda value: value


@dataclass(frozen=True)
class SortKey:
    """A parsed sort: (field name, descending) pairs, ending with ("id", False)."""

    fields: tuple[tuple[str, bool], ...]

    @property
    def canonical(self) -> str:
        """The sort as a normalized string (also what a cursor is bound to)."""
        return ",".join(("-" if desc else "") + name for name, desc in self.fields)


def parse_sort(raw: str, allowed: Mapping[str, SortField]) -> SortKey:
    """Parse 'name,-price' into a SortKey over `allowed`, appending the id tie-breaker."""
    fields: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for part in (p.strip() for p in raw.split(",")):
        desc = part.startswith("-")
        name = part[1:] if desc else part
        if name not in allowed:
            choices = ", ".join(sorted(allowed))
            raise InvalidSortError(f"unknown sort field {name!r} (choose from {choices})")
        if name in seen:
            raise InvalidSortError(f"sort field {name!r} given twice")
        seen.add(name)
        fields.append((name, desc))
    if "id" in seen:  # id is unique: fields after it cannot change the order
        fields = fields[: [name for name, _ in fields].index("id") + 1]
    else:
        fields.append(("id", False))
    return SortKey(tuple(fields))


def order_by(sort: SortKey, allowed: Mapping[str, SortField]) -> list[UnaryExpression[Any]]:
    """ORDER BY clauses for the sort, NULLs last ascending and first descending."""
    clauses = []
    for name, desc in sort.fields:
        column = allowed[name].column
        if desc:
            clauses.append(column.desc().nulls_first() if allowed[name].nullable else column.desc())
        else:
            clauses.append(column.asc().nulls_last() if allowed[name].nullable else column.asc())
    return clauses


def _after(field: SortField, desc: bool, value: Any) -> ColumnElement[bool]:
    """Rows strictly after `value` in this field's direction (NULL = largest)."""
    column = field.column
    if value is None:
        return column.is_not(None) if desc else false()
    strictly: ColumnElement[bool] = column < value if desc else column > value
    if field.nullable and not desc:
        return or_(strictly, column.is_(None))
    return strictly


def _equal(field: SortField, value: Any) -> ColumnElement[bool]:
    return field.column.is_(None) if value is None else field.column == value


def keyset_after(
    sort: SortKey, allowed: Mapping[str, SortField], values: Sequence[Any]
) -> ColumnElement[bool]:
    """WHERE clause selecting the rows that follow the row whose sort key is `values`."""
    fields = [(allowed[name], desc) for name, desc in sort.fields]
    if len(fields) == 1:
        return _after(fields[0][0], fields[0][1], values[0])
    if not any(desc or field.nullable for field, desc in fields):
        # One row-value comparison: an index on the sort columns serves it as a range scan.
        comparison: ColumnElement[bool] = tuple_(*(f.column for f, _ in fields)) > tuple_(*values)
        return comparison
    branches = []
    for i, (field, desc) in enumerate(fields):
        prefix = [_equal(f, v) for (f, _), v in zip(fields[:i], values[:i], strict=True)]
        branches.append(
            and_(*prefix, _after(field, desc, values[i]))
            if prefix
            else _after(field, desc, values[i])
        )
    return or_(*branches) if branches else true()


def row_key(sort: SortKey, row: Mapping[Any, Any]) -> list[Any]:
    """The sort key values of a result row, in sort order."""
    return [row[name] for name, _ in sort.fields]


# --- cursor tokens ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # one spelling per cursor: unused low bits must be zero
        raise ValueError("non-canonical base64")
    return data


def encode_value(value: Any) -> Any:
    """JSON-safe form of a sort value (exact for money and timestamps)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def decode_datetime(value: Any) -> datetime:
    """Inverse of `encode_value` for timestamps."""
    if not isinstance(value, str):
        raise TypeError("timestamp expected")
    return datetime.fromisoformat(value)


def decode_decimal(value: Any) -> Decimal:
    """Inverse of `encode_value` for money."""
    if not isinstance(value, str):
        raise TypeError("decimal expected")
    return Decimal(value)


def _fingerprint(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


class CursorCodec:
    """Signs and verifies cursor tokens bound to a query's scope (endpoint+sort+filters)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"catalog-cursor:" + secret.encode()).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(
        self, scope: str, sort: SortKey, allowed: Mapping[str, SortField], values: Sequence[Any]
    ) -> str:
        """A token for 'the rows after `values`' in this scope."""
        encoded = [
            allowed[name].encode(v) if v is not None else None
            for (name, _), v in zip(sort.fields, values, strict=True)
        ]
        payload = orjson.dumps({"v": CURSOR_VERSION, "s": _fingerprint(scope), "k": encoded})
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(
        self, token: str, scope: str, sort: SortKey, allowed: Mapping[str, SortField]
    ) -> list[Any]:
        """The sort key values in `token`; InvalidCursorError unless it is ours and fits."""
        try:
            body, mac = token.split(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
                raise InvalidCursorError("cursor is invalid")
            data = orjson.loads(payload)
        except InvalidCursorError:
            raise
        except (ValueError, TypeError):
            raise InvalidCursorError("cursor is malformed") from None
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
            raise InvalidCursorError("cursor is from an unsupported version")
        if data.get("s") != _fingerprint(scope):
            raise InvalidCursorError("cursor was issued for another endpoint, sort or filter set")
        raw = data.get("k")
        if not isinstance(raw, list) or len(raw) != len(sort.fields):
            raise InvalidCursorError("cursor is malformed")
        try:
            return [
                None if v is None else allowed[name].decode(v)
                for (name, _), v in zip(sort.fields, raw, strict=True)
            ]
        except (ValueError, TypeError, ArithmeticError):
            raise InvalidCursorError("cursor is malformed") from None
