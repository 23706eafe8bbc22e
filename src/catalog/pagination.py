"""Sorting and keyset pagination in SQL, independent of any one resource.

A sort is a whitelist of fields, each ascending or descending, always completed by
ascending `id` as the tie-breaker, so the order is total and pages never repeat or skip
a row. NULLs sort as larger than any value. A keyset page is "rows strictly after the
sort key of the last row served" in that order, which an index on (column, id) answers
in time independent of the page's depth. The key travels in a signed cursor (`cursors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true, tuple_
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import UnaryExpression


class InvalidSortError(ValueError):
    """The sort parameter names an unknown field or repeats one."""


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
