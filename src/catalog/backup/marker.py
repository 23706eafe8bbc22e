"""The mark of an unfinished restore: a table that exists only while a restore runs.

A restore creates it in the target (committed) before it writes anything else and
removes it as its very last step. A restore that stops half-way (killed, disk full,
a bad file) leaves it behind, and everything that would use the data refuses the
database: `catalog serve` and the app's start, `catalog db check`, `catalog db backup`.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.db.errors import is_unavailable
from catalog.errors import CatalogError

MARKER_TABLE = "catalog_restore_incomplete"


class BackupError(CatalogError):
    """A backup or restore could not be done; the message says why and what to do."""


class RestoreIncompleteError(BackupError):
    """The database holds a restore that never finished: its data must not be served."""

    def __init__(self, where: str) -> None:
        super().__init__(
            f"{where} holds an unfinished restore (table {MARKER_TABLE} is present): its "
            "data may be incomplete and is not served. Restore it again with "
            "`catalog db restore BACKUP --force`."
        )


def restore_incomplete(connection: Connection) -> bool:
    """Whether the database `connection` is on carries the unfinished-restore mark."""
    return inspect(connection).has_table(MARKER_TABLE)


def refuse_incomplete_restore(connection: Connection, where: str = "the database") -> None:
    """Raise RestoreIncompleteError if the database carries the mark."""
    if restore_incomplete(connection):
        raise RestoreIncompleteError(where)


async def refuse_to_serve_incomplete_restore(engine: AsyncEngine) -> None:
    """At start: raise RestoreIncompleteError if the database carries the mark.

    A database that cannot be reached is not checked (the service starts and answers 503
    while it is down, as before); `catalog serve` checks again in its own process.
    """
    try:
        async with engine.connect() as connection:
            incomplete = await connection.run_sync(restore_incomplete)
    except Exception as error:
        if is_unavailable(error):
            return
        raise
    if incomplete:
        raise RestoreIncompleteError("the database")
