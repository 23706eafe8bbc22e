"""One DATABASE_URL in, a sync and an async SQLAlchemy URL out."""

from __future__ import annotations

import re
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
        # libpq (psycopg) spells the TLS mode `sslmode`, asyncpg spells it `ssl`: accept
        # either and hand each driver its own spelling.
        query = {k: v for k, v in url.query.items() if k not in ("sslmode", "ssl")}
        mode = url.query.get("sslmode") or url.query.get("ssl")
        if mode:
            async_url = async_url.set(query=query | {"ssl": mode})
            sync_url = sync_url.set(query=query | {"sslmode": mode})
    return DatabaseURLs(async_url=async_url, sync_url=sync_url)
