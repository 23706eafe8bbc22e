"""Helpers every service shares."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


class Actor(Protocol):
    """Who performs a write: a `User`, or the lighter `users.Principal`."""

    @property
    def id(self) -> int: ...

    @property
    def is_superuser(self) -> bool: ...


# Ids are 32-bit INTEGER columns; PostgreSQL raises on a larger literal rather than
# finding nothing, so out-of-range ids are answered as "no such row" before any SQL.
MAX_ID = 2**31 - 1


def is_valid_id(value: int) -> bool:
    """Whether `value` can be the primary key of a row."""
    return 0 < value <= MAX_ID


def dialect_name(session: AsyncSession) -> str:
    """The database dialect the session is bound to ("postgresql" or "sqlite")."""
    return session.get_bind().dialect.name


def upsert_insert(
    dialect: str, target: type[DeclarativeBase] | Table
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ON CONFLICT on the given dialect."""
    if dialect == "postgresql":
        return postgresql.insert(target)
    if dialect == "sqlite":
        return sqlite.insert(target)
    raise NotImplementedError(f"no ON CONFLICT support for {dialect}")


def insert_ignoring_duplicates(
    dialect: str, target: type[DeclarativeBase] | Table, rows: list[dict[str, Any]]
) -> postgresql.Insert | sqlite.Insert:
    """INSERT rows, silently skipping any that would violate a unique constraint."""
    return upsert_insert(dialect, target).values(rows).on_conflict_do_nothing()
