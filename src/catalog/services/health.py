"""Readiness: whether the database answers."""

from __future__ import annotations

from sqlalchemy import literal_column, select

from catalog.db.compiled import CompiledQuery
from catalog.db.unit_of_work import UnitOfWork

_PING = CompiledQuery(select(literal_column("1").label("ok")))


async def ping(uow: UnitOfWork) -> None:
    """One trivial statement; raises whatever the database or driver raises."""
    await uow.fetch_one(_PING)
