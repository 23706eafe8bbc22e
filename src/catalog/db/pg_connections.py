"""How Catalog connects to PostgreSQL: session settings, time bounds, pooler modes.

The connect arguments of the API's asyncpg engine and of the CLI's psycopg engine, which
`backends.PostgreSQL.engine_options` hands to SQLAlchemy. Behind a pooler nothing may be
sent at connect (PgBouncer refuses startup parameters), and in transaction mode no
prepared statement may outlive its statement (docs/scaling.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from catalog.config import Settings

PLANNER_SETTINGS = {"jit": "off", "max_parallel_workers_per_gather": "0"}


def session_settings(settings: Settings) -> dict[str, str]:
    """The PostgreSQL settings every API connection works under."""
    # JIT compilation and parallel workers only slow the short statements an OLTP API
    # sends (a parallel plan for a filtered page measured 30x slower).
    values = dict(PLANNER_SETTINGS)
    if settings.db_statement_timeout_ms:
        values["statement_timeout"] = str(settings.db_statement_timeout_ms)
    if settings.db_lock_timeout_ms:
        values["lock_timeout"] = str(settings.db_lock_timeout_ms)
    return values


def asyncpg_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's connect arguments for the API's engine: timeouts, session settings, and
    what the pooler mode (`DATABASE_POOLER`) allows."""
    statement_ms = settings.db_statement_timeout_ms
    args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout,
        # The server enforces statement_timeout; this client-side bound (a little later)
        # also ends a wait on a server that cannot answer at all (frozen, partitioned),
        # and is the bound behind a pooler, which cannot pass the setting at connect.
        "command_timeout": statement_ms / 1000 + 1 if statement_ms else None,
    }
    if settings.database_pooler == "none":
        args["server_settings"] = session_settings(settings)
    # Behind a pooler no startup parameter gets through (PgBouncer refuses the login):
    # the planner settings come from `catalog db tune` (ALTER DATABASE ... SET), the time
    # bounds from command_timeout and, in transactions, SET LOCAL (see `configure`).
    if settings.database_pooler == "transaction":
        # Consecutive statements may reach different server connections: no prepared
        # statement outlives its statement (asyncpg's cache off, SQLAlchemy's statements
        # uniquely named so two clients' never collide on one server connection).
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        args["prepared_statement_name_func"] = _unique_statement_name
    return args


def _unique_statement_name() -> str:
    return f"__catalog_{uuid.uuid4().hex}__"


def psycopg_connect_args(settings: Settings) -> dict[str, Any]:
    """psycopg's connect arguments for the CLI's and migrations' engine."""
    args: dict[str, Any] = {"connect_timeout": max(1, round(settings.db_connect_timeout))}
    if settings.cli_statement_timeout_ms and settings.database_pooler == "none":
        args["options"] = f"-c statement_timeout={settings.cli_statement_timeout_ms}"
    if settings.database_pooler == "transaction":
        args["prepare_threshold"] = None  # psycopg's server-side prepared statements off
    return args
