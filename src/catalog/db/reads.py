"""Read queries compiled once and run with the least overhead the driver allows.

A `ReadQuery` wraps a SQLAlchemy SELECT whose values are all named `bindparam`s, so the
statement is built and compiled once per dialect instead of once per request (building
and cache-keying a statement costs more than the round trip it makes).

On PostgreSQL it runs straight on the asyncpg connection checked out of the SQLAlchemy
engine's pool: no transaction around a lone SELECT, no result-processing layer, and
asyncpg's own prepared-statement cache (so `statement_cache_size=0` in the connect args
still turns it off behind PgBouncer). Parameters must then be driver-native values
(int, str, bool, Decimal, timezone-aware datetime). On SQLite the same statement runs
through an AUTOCOMMIT SQLAlchemy connection, with SQLAlchemy's type processing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Row = Mapping[Any, Any]


class ReadQuery:
    """A parameterized SELECT, compiled lazily once per dialect."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    def compiled(self, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
        """SQL text and the order of its positional parameters, for `dialect`."""
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            if compiled.literal_execute_params or compiled.post_compile_params:
                raise ValueError("ReadQuery statements cannot use expanding parameters")
            found = (compiled.string, tuple(compiled.positiontup or ()))
            self._compiled[dialect.name] = found
        return found


async def fetch_all(
    engine: AsyncEngine, query: ReadQuery, params: Mapping[str, Any]
) -> Sequence[Row]:
    """All rows of `query` as mappings (column name -> value)."""
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            driver = await _asyncpg(connection)
            sql, order = query.compiled(engine.dialect)
            try:
                records: Sequence[Row] = await driver.fetch(sql, *[params[n] for n in order])
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                # The pool cannot see errors raised past it: drop the broken connection.
                await connection.invalidate()
                raise
            return records
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        result = await connection.execute(query.statement, dict(params))
        return result.mappings().all()


async def _asyncpg(connection: AsyncConnection) -> Any:
    raw = await connection.get_raw_connection()
    return raw.driver_connection
