"""One DATABASE_URL in, a sync and an async SQLAlchemy URL out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# backend -> (async driver, sync driver); the drivers each backend accepts when named explicitly.
_DRIVERS: dict[str, tuple[str, str]] = {
    "postgresql": ("asyncpg", "psycopg"),
    "sqlite": ("aiosqlite", "pysqlite"),
}
_ACCEPTED: dict[str, frozenset[str]] = {
    "postgresql": frozenset({"", "asyncpg", "psycopg"}),
    "sqlite": frozenset({"", "aiosqlite", "pysqlite"}),
}
_ALIASES = {"postgres": "postgresql"}
# PostgreSQL URL options only one of the two drivers understands; each goes to its own
# driver's URL, so an option for one does not break the other (e.g. `command_timeout`
# bounds the API's statements but psycopg, for the CLI and migrations, rejects it).
# Options in neither list go to both.
_ASYNCPG_ONLY = frozenset(
    {
        "command_timeout",
        "timeout",
        "statement_cache_size",
        "prepared_statement_cache_size",
        "prepared_statement_name_func",
        "max_cached_statement_lifetime",
        "max_cacheable_statement_size",
    }
)
_LIBPQ_ONLY = frozenset(
    {
        "connect_timeout",
        "application_name",
        "fallback_application_name",
        "options",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "client_encoding",
        "gssencmode",
        "channel_binding",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslpassword",
    }
)
# The password of a URL too malformed to parse, so an error message can leave it out.
_PASSWORD = re.compile(r"(://[^/@:]*:)[^@]*@")


class DatabaseURLs(NamedTuple):
    """The same database, addressed through an async and a sync driver."""

    async_url: URL
    sync_url: URL

    @property
    def backend(self) -> str:
        return self.sync_url.get_backend_name()


def resolve_urls(raw: str) -> DatabaseURLs:
    """Map a user-facing URL to the async and sync driver URLs; ValueError if unsupported."""
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError):
        shown = _PASSWORD.sub(r"\1***@", raw)
        raise ValueError(f"DATABASE_URL is not a valid database URL: {shown!r}") from None
    backend, _, driver = url.drivername.partition("+")
    backend = _ALIASES.get(backend, backend)
    if backend not in _DRIVERS:
        supported = ", ".join(sorted(_DRIVERS))
        raise ValueError(f"DATABASE_URL backend {backend!r} is not supported (use {supported})")
    if driver not in _ACCEPTED[backend]:
        raise ValueError(f"DATABASE_URL driver {driver!r} is not supported for {backend}")
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        # Two engines (sync and async) would each get their own empty in-memory database.
        raise ValueError("DATABASE_URL must name an SQLite file, e.g. sqlite:///./catalog.db")
    if backend == "postgresql" and not url.database:
        raise ValueError("DATABASE_URL must name a PostgreSQL database")
    async_driver, sync_driver = _DRIVERS[backend]
    async_url = url.set(drivername=f"{backend}+{async_driver}")
    sync_url = url.set(drivername=f"{backend}+{sync_driver}")
    if backend == "postgresql":
        async_query, sync_query = _split_options(url.query)
        async_url = async_url.set(query=async_query)
        sync_url = sync_url.set(query=sync_query)
    return DatabaseURLs(async_url=async_url, sync_url=sync_url)


def _split_options(
    query: Mapping[str, str | tuple[str, ...]],
) -> tuple[dict[str, str | tuple[str, ...]], dict[str, str | tuple[str, ...]]]:
    """The URL options for asyncpg and for psycopg."""
    shared = {k: v for k, v in query.items() if k not in ("sslmode", "ssl")}
    async_query = {k: v for k, v in shared.items() if k not in _LIBPQ_ONLY}
    sync_query = {k: v for k, v in shared.items() if k not in _ASYNCPG_ONLY}
    # libpq (psycopg) spells the TLS mode `sslmode`, asyncpg spells it `ssl`: accept
    # either and hand each driver its own spelling.
    mode = query.get("sslmode") or query.get("ssl")
    if mode:
        async_query["ssl"] = mode
        sync_query["sslmode"] = mode
    return async_query, sync_query


def supports_replicas(raw: str) -> bool:
    """Whether the database `raw` names can have streaming read replicas (PostgreSQL)."""
    return resolve_urls(raw).backend == "postgresql"
