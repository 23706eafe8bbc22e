"""Statements built and compiled once, then run with the least overhead the driver allows.

A `CompiledQuery` wraps a SQLAlchemy statement (a SELECT, or a write with RETURNING)
whose values are all named `bindparam`s, so it is built and compiled once per dialect
instead of once per request (building and cache-keying a statement costs more than the
round trip it makes). How it runs is the backend's business (`db/backends.py`): outside a
transaction on the raw asyncpg connection, or through SQLAlchemy inside a unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, cast

from sqlalchemy import ClauseElement, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

Row = Mapping[Any, Any]


class Compiled(NamedTuple):
    """A statement as one dialect runs it."""

    sql: str
    order: tuple[str, ...]  # the bound parameters' names, in positional order
    defaults: Mapping[str, Any]  # literals and the scalar defaults of columns left unset

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """Positional values for `params`, completed by the column defaults."""
        defaults = self.defaults
        return [params[name] if name in params else defaults[name] for name in self.order]


class CompiledQuery:
    """A parameterized statement returning rows, compiled lazily once per dialect.

    `custom_plan`: planned for its values at every run. PostgreSQL otherwise may switch a
    prepared statement to a generic plan after five runs, chosen for no values in
    particular; for a statement whose cost depends on how many rows its values match (a
    capped count), that plan can read 20x more rows. Planning costs a round trip and a
    fraction of a millisecond, so only such statements ask for it.
    """

    __slots__ = ("_compiled", "custom_plan", "statement")

    def __init__(self, statement: Executable, *, custom_plan: bool = False) -> None:
        self.statement = statement
        self.custom_plan = custom_plan
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        """SQL text, positional parameter order and column defaults, for `dialect`."""
        found = self._compiled.get(dialect.name)
        if found is None:
            element = cast(ClauseElement, self.statement)
            compiled = cast(SQLCompiler, element.compile(dialect=dialect))
            if compiled.literal_execute_params or compiled.post_compile_params:
                raise ValueError("CompiledQuery statements cannot use expanding parameters")
            found = Compiled(
                compiled.string, tuple(compiled.positiontup or ()), _scalar_defaults(compiled)
            )
            self._compiled[dialect.name] = found
        return found


def _scalar_defaults(compiled: SQLCompiler) -> dict[str, Any]:
    """Values SQLAlchemy would fill in at execution: literals in expressions (the 1 of
    `version + 1`) and columns' scalar defaults (e.g. `is_active=True` on INSERT)."""
    defaults = {}
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if not bind.required and bind.value is not None:
            defaults[name] = bind.value
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        default = column.default
        if default is None or not default.is_scalar:
            raise ValueError(f"column {column.key}: only scalar defaults can be precompiled")
        defaults[column.key] = default.arg  # type: ignore[attr-defined]
    return defaults
