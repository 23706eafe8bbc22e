"""Which database failures mean "unavailable, retry later" rather than "broken".

Unavailable: the server cannot be reached, is starting up or shutting down, the
connection was lost, the pool had no connection within its wait, a statement or lock
wait ran past its timeout, the server is out of connections, a transaction lost a
serialization race, or a write reached a read-only standby (during a failover). The API
answers those 503 with Retry-After; anything else is a bug or a conflict of data and
keeps its own answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# SQLSTATE classes: 08 connection exception, 53 insufficient resources (too many
# connections), 57 operator intervention (57014 statement timeout, 57P01 admin shutdown,
# 57P03 the database system is starting up).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
# 55P03 lock timeout; 40001 serialization failure and 40P01 deadlock: a retry succeeds.
# 25006 read_only_sql_transaction: a write reached a standby (a primary demoted by a
# failover, or a connection routed there before the switch): the next leader will take
# it. The API never opens a read-only transaction itself, so this is never its own bug.
READ_ONLY_SQLSTATE = "25006"
UNAVAILABLE_SQLSTATES = frozenset({"55P03", "40001", "40P01", READ_ONLY_SQLSTATE})
# asyncpg's errors for a connection the server ended. InternalClientError: the connection
# read a message no request asked for, in practice the server's goodbye (FATAL
# "terminating connection") before its closure, and refuses any further statement
# ("another operation is in progress").
_ENDED_BY_SERVER = (asyncpg.ConnectionDoesNotExistError, asyncpg.InternalClientError)
# asyncpg's errors for a connection that is gone (not an SQL error from the server).
CONNECTION_LOST = (*_ENDED_BY_SERVER, asyncpg.InterfaceError, OSError)
# The server ended the connection: 57P01 admin shutdown (pg_terminate_backend, a fast
# shutdown), 57P02 crash shutdown.
_CLOSED_BY_SERVER_SQLSTATES = frozenset({"57P01", "57P02"})


class DatabaseUnavailableError(Exception):
    """The database could not do the work now; the same request may succeed later."""


# What the API must examine: every exception a database call can raise besides the
# domain errors (IntegrityError, a DBAPIError, has a handler of its own).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseUnavailableError,
    DBAPIError,
    PoolTimeoutError,
    OSError,  # connection refused or reset; TimeoutError (asyncio's too) is one
    asyncpg.InterfaceError,
    asyncpg.PostgresError,
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (`orig`) and what caused it, a few levels deep."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending and len(seen) < 8:
        current = pending.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        pending += [getattr(current, "orig", None), current.__cause__]


def _unavailable_one(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailableError | PoolTimeoutError | OSError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, asyncpg.ConnectionDoesNotExistError):
        return True
    if isinstance(error, asyncpg.InterfaceError):
        return "closed" in str(error)  # not "another operation is in progress" (a bug)
    if isinstance(error, sqlite3.OperationalError):
        # Busy (another process holds the write lock) or the file cannot be opened (a
        # volume not mounted yet); not "disk I/O error" or a malformed database.
        return any(word in str(error) for word in ("locked", "busy", "unable to open"))
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith(UNAVAILABLE_SQLSTATE_CLASSES) or state in UNAVAILABLE_SQLSTATES
    return False


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what it wraps) says the database is unavailable for now."""
    return any(_unavailable_one(link) for link in _chain(error))


def closed_by_server(error: BaseException) -> bool:
    """Whether `error` (or what it wraps) shows that the server ended the connection:
    after a restart, a failover or a pg_terminate_backend, it has ended the others too."""
    return any(
        isinstance(link, _ENDED_BY_SERVER)
        or getattr(link, "sqlstate", None) in _CLOSED_BY_SERVER_SQLSTATES
        for link in _chain(error)
    )


def refused_as_standby(error: BaseException) -> bool:
    """Whether `error` (or what it wraps) is a write refused by a read-only server."""
    return any(getattr(link, "sqlstate", None) == READ_ONLY_SQLSTATE for link in _chain(error))
