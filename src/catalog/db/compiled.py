"""Single statements compiled once and run with the least overhead the driver allows.

A `CompiledQuery` wraps a SQLAlchemy statement (a SELECT, or a write with RETURNING)
whose values are all named `bindparam`s, so it is built and compiled once per dialect
instead of once per request (building and cache-keying a statement costs more than the
round trip it makes). One statement is atomic on its own: it runs outside any explicit
transaction, so a read or a single-statement write costs one round trip.

On PostgreSQL it runs straight on the asyncpg connection checked out of the SQLAlchemy
engine's pool: no BEGIN/COMMIT around it, no result-processing layer, and
asyncpg's own prepared-statement cache (so `statement_cache_size=0` in the connect args
still turns it off behind PgBouncer). Parameters must then be driver-native values
(int, str, bool, Decimal, timezone-aware datetime). On SQLite the same statement runs
through an AUTOCOMMIT SQLAlchemy connection, with SQLAlchemy's type processing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import asyncpg
from sqlalchemy import ClauseElement, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

Row = Mapping[Any, Any]


class CompiledQuery:
    """A parameterized statement returning rows, compiled lazily once per dialect."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    def compiled(self, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
        """SQL text and the order of its positional parameters, for `dialect`."""
        found = self._compiled.get(dialect.name)
        if found is None:
            element = cast(ClauseElement, self.statement)
            compiled = cast(SQLCompiler, element.compile(dialect=dialect))
            if compiled.literal_execute_params or compiled.post_compile_params:
                raise ValueError("CompiledQuery statements cannot use expanding parameters")
            found = (compiled.string, tuple(compiled.positiontup or ()))
            self._compiled[dialect.name] = found
        return found


async def fetch_all(
    engine: AsyncEngine, query: CompiledQuery, params: Mapping[str, Any]
) -> Sequence[Row]:
    """All rows of `query` as mappings (column name -> value)."""
    if engine.dialect.name == "postgresql":
        return await _fetch_asyncpg(engine, query, params)
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        result = await connection.execute(query.statement, dict(params))
        return result.mappings().all()


async def _fetch_asyncpg(
    engine: AsyncEngine, query: CompiledQuery, params: Mapping[str, Any]
) -> Sequence[Row]:
    sql, order = query.compiled(engine.dialect)
    # The pool's own DBAPI connection, without the Connection/AsyncConnection wrappers.
    pooled = await engine.raw_connection()
    driver: Any = pooled.driver_connection
    try:
        records: Sequence[Row] = await driver.fetch(sql, *[params[name] for name in order])
    except asyncpg.IntegrityConstraintViolationError as error:
        # The same exception a statement run through SQLAlchemy raises (answered 409).
        raise IntegrityError(sql, params, error) from error
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
        # The pool cannot see errors raised past it: drop the broken connection.
        await greenlet_spawn(pooled.invalidate)
        raise
    finally:
        await greenlet_spawn(pooled.close)  # back to the pool
    return records
