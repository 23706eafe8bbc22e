"""Column types and SQL functions that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Table, types
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal


def code_point_string(length: int) -> types.TypeEngine[str]:
    """A VARCHAR that compares and sorts by code point on every database.

    SQLite compares text bytewise (BINARY) already; PostgreSQL needs the "C" collation.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class UTCDateTime(types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out, whether or not the database stores zones.

    SQLite has no zone support: values are stored as naive UTC text and made aware on read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC-aware one is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class utcnow(FunctionElement[datetime]):
    """The current UTC time with sub-second precision, as each database spells it."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(utcnow, "postgresql")
def _utcnow_pg(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    return "now()"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    # Same text layout SQLAlchemy writes for DateTime on SQLite, so values compare as text.
    return "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


class StringList(types.TypeDecorator[list[str]]):
    """The result of `string_agg_list`: a sorted Python list (empty when nothing matched)."""

    impl = types.JSON
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):  # SQLite's json_group_array returns JSON text
            value = json.loads(value)
        return sorted(value)


class string_agg_list(FunctionElement[list[str]]):
    """Aggregate strings into one list value: array_agg on PostgreSQL, JSON on SQLite."""

    type = StringList()
    inherit_cache = True


@compiles(string_agg_list, "postgresql")
def _agg_pg(element: string_agg_list, compiler: SQLCompiler, **kw: Any) -> str:
    return f"array_agg({compiler.process(element.clauses, **kw)})"


@compiles(string_agg_list, "sqlite")
def _agg_sqlite(element: string_agg_list, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array({compiler.process(element.clauses, **kw)})"


class unicode_ilike(FunctionElement[bool]):
    """`column ILIKE pattern` (pattern escaped with backslash), folding case beyond ASCII.

    Both databases' built-in case folding is ASCII-only for our code-point columns:
    PostgreSQL compares under the database's default collation instead of "C" (the
    pg_trgm index is declared with that collation so it still serves the query);
    SQLite lower-cases both sides with Python's str.lower (see `unicode_lower`).
    """

    type = Boolean()
    inherit_cache = True
    # A predicate in itself: SQLite's compiler would otherwise write `... = 1` after it
    # (no native booleans), which hides the LIKE from nothing but reads oddly.
    _is_implicitly_boolean = True


def contains_pattern(text: str) -> str:
    """The `unicode_ilike` pattern matching `text` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@compiles(unicode_ilike, "postgresql")
def _ilike_pg(element: unicode_ilike, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} COLLATE \"default\") ILIKE {pattern} ESCAPE '\\'"


@compiles(unicode_ilike, "sqlite")
def _ilike_sqlite(element: unicode_ilike, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"unicode_lower({column}) LIKE unicode_lower({pattern}) ESCAPE '\\'"


class folded_contains(unicode_ilike):
    """`unicode_ilike` on a column whose table keeps it lower-cased in `<column>_folded`.

    PostgreSQL: `<column>_folded LIKE lower(pattern)` under "C", the copy a trigger keeps as
    `lower(column COLLATE "default")` (items.name: migration 0014). ILIKE under the default
    collation lower-cases both sides the same way, so the matches are the same; the name is
    not lower-cased again on every row tested, nor the sampled names when planning (4x
    cheaper a row). SQLite: `unicode_ilike` itself.
    """

    inherit_cache = True


@compiles(folded_contains, "postgresql")
def _folded_contains_pg(element: folded_contains, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    # Lowered under the default collation, compared under "C": the column's own, which
    # its trigram index and its statistics are for (a LIKE under "default" uses neither).
    lowered = f'(lower({pattern} COLLATE "default") COLLATE "C")'
    return f"{column}_folded LIKE {lowered} ESCAPE '\\'"


def unicode_lower(value: str | None) -> str | None:
    """SQLite function `unicode_lower`, registered on every connection."""
    return value.lower() if value is not None else None


class unindexed(FunctionElement[Any]):
    """The column's value, which SQLite may not look up through an index (`+column`): a
    hint where its planner, which keeps no statistics of values, would pick the wrong one.
    The column's type, so that comparisons bind values as for the column itself. Only for
    columns whose affinity cannot change a comparison (text against text, like dates)."""

    inherit_cache = True

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed_default(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


# A list of integers stored in one column: integer[] on PostgreSQL, JSON text on SQLite.
INT_LIST: types.TypeEngine[Any] = JSON().with_variant(postgresql.ARRAY(Integer), "postgresql")


class empty_int_list(FunctionElement[Any]):
    """The empty `INT_LIST` as a server default: '{}' on PostgreSQL, '[]' on SQLite."""

    inherit_cache = True


@compiles(empty_int_list, "postgresql")
def _empty_int_list_pg(element: empty_int_list, compiler: SQLCompiler, **kw: Any) -> str:
    return "'{}'::integer[]"


@compiles(empty_int_list, "sqlite")
def _empty_int_list_sqlite(element: empty_int_list, compiler: SQLCompiler, **kw: Any) -> str:
    return "'[]'"


class carries_tags(FunctionElement[bool]):
    """`carries_tags(items.id, items.tag_ids, tag_id, ...)`: the item has every tag id.

    PostgreSQL reads the item's own `tag_ids` (one probe of its GIN index; an
    unknown tag, a NULL id, becomes 0, which no item carries); SQLite checks the join table:
    one `IN` over the intersection of the tags' links (`_carries_tags_sqlite`), which the
    planner may use to drive the query (fetch the listed items by rowid).
    """

    type = Boolean()
    inherit_cache = True
    # A predicate in itself. Without this, SQLite's compiler (no native booleans) appends
    # `= 1`, and `(id IN (...)) = 1` is no IN constraint to the planner.
    _is_implicitly_boolean = True


class carries_tags_checked(carries_tags):
    """`carries_tags`, which on SQLite only tests each row the query reaches otherwise.

    For a page of one tag: SQLite would rather fetch the tag's every item (its estimate of
    a tag is the average, 1.3% of 1M items) and sort them (50-95 ms) than walk the sort's
    index testing each row's membership, which finds a page in a few thousand rows (5 ms).
    `+items.id` keeps the IN from being used as an index constraint. PostgreSQL: the same.
    """

    inherit_cache = True


@compiles(carries_tags, "postgresql")
def _carries_tags_pg(element: carries_tags, compiler: SQLCompiler, **kw: Any) -> str:
    _, tag_ids, *wanted = (compiler.process(c, **kw) for c in element.clauses)
    ids = ", ".join(f"coalesce({w}, 0)" for w in wanted)
    # The built-in operator, which intarray's `@>` for int[] shadows: its GIN index skips
    # through posting lists (migration 0016).
    return f"({tag_ids} OPERATOR(pg_catalog.@>) CAST(ARRAY[{ids}] AS INTEGER[]))"


@compiles(carries_tags, "sqlite")
def _carries_tags_sqlite(element: carries_tags, compiler: SQLCompiler, **kw: Any) -> str:
    item_id, _, first, *others = (compiler.process(c, **kw) for c in element.clauses)
    # One IN over the items carrying every tag, the intersection taken inside the join
    # table's indexes: the first tag's (tag_id, item_id) entries, each probed for the
    # others. One IN per tag instead fetched every item of one tag from the table to
    # test it against the next (3 tags: 80 ms; the intersection: 5 ms).
    joins = "".join(
        f" JOIN item_tags AS tagged_{n}"
        f" ON tagged_{n}.item_id = tagged_0.item_id AND tagged_{n}.tag_id = {tag}"
        for n, tag in enumerate(others, start=1)
    )
    links = f"SELECT tagged_0.item_id FROM item_tags AS tagged_0{joins}"
    only_tested = "+" if isinstance(element, carries_tags_checked) else ""
    return f"{only_tested}{item_id} IN ({links} WHERE tagged_0.tag_id = {first})"


# A list of strings bound as one parameter: text[] on PostgreSQL, JSON text on SQLite.
STRING_LIST: types.TypeEngine[Any] = JSON().with_variant(postgresql.ARRAY(String), "postgresql")


class each_string(FunctionElement[Any]):
    """The elements of a `STRING_LIST` parameter as rows: unnest() / json_each().

    Use as `each_string(param).table_valued("value", name="value")`: both functions then
    yield a column `value` (PostgreSQL names a scalar function's column after its alias).
    """

    inherit_cache = True


@compiles(each_string, "postgresql")
def _each_pg(element: each_string, compiler: SQLCompiler, **kw: Any) -> str:
    return f"unnest({compiler.process(element.clauses, **kw)})"


@compiles(each_string, "sqlite")
def _each_sqlite(element: each_string, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


def upsert(target: type[DeclarativeBase] | Table) -> postgresql.Insert:
    """An INSERT that takes `on_conflict_do_nothing` / `on_conflict_do_update`.

    One construct for both databases: SQLite's compiler renders PostgreSQL's ON CONFLICT
    clauses (SQLite adopted the same grammar), so statements built once at import time
    compile on either. Every upsert runs on both in the test suite.
    """
    return postgresql.insert(target)


class by_dialect(ColumnElement[Any]):
    """One of two expressions of the same value, chosen when compiled: `postgresql`
    there, `default` elsewhere (where one database has a cheaper way to the same answer)."""

    inherit_cache = True
    # What the statement cache keys on (both alternatives); SQLAlchemy reads the class's.
    _traverse_internals = [  # noqa: RUF012
        ("postgresql", InternalTraversal.dp_clauseelement),
        ("default", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, postgresql: ColumnElement[Any], default: ColumnElement[Any]) -> None:
        self.postgresql = postgresql
        self.default = default
        self.type = default.type


@compiles(by_dialect)
def _by_dialect_default(element: by_dialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.default, **kw)


@compiles(by_dialect, "postgresql")
def _by_dialect_pg(element: by_dialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.postgresql, **kw)
