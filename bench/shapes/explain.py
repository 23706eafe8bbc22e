"""`python -m bench.shapes.explain`: the plans of the statements a shape runs (PostgreSQL).

Each chosen shape's first page is requested once through the service, in this process,
with every statement it sends on the raw asyncpg path recorded with its arguments. Each
statement is then run again under `EXPLAIN (ANALYZE, BUFFERS)` with the same arguments,
as a custom plan (planned for those values, as the service's counts are), and printed.
Statements in a write transaction (SQLAlchemy's path) are not lists and are left out.

    .venv/bin/python -m bench.shapes.explain --only "sort=updated_at,-price"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg
import httpx
from asyncpg.prepared_stmt import PreparedStatement
from sqlalchemy import create_engine

from bench.run import default_database_url
from bench.shapes import matrix, params
from bench.shapes.cli import _oracle_url
from catalog.api.app import create_app
from catalog.config import Settings

Statement = tuple[str, tuple[Any, ...]]


@contextlib.contextmanager
def _recorded(into: list[Statement]) -> Iterator[None]:
    """Record every statement asyncpg runs by `Connection.fetch` or `prepare` + `fetch`."""
    fetch, prepared_fetch = asyncpg.Connection.fetch, PreparedStatement.fetch

    async def recording_fetch(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        into.append((query, args))
        return await fetch(self, query, *args, **kwargs)

    async def recording_prepared(self: PreparedStatement, *args: Any, **kwargs: Any) -> Any:
        into.append((self.get_query(), args))
        return await prepared_fetch(self, *args, **kwargs)

    asyncpg.Connection.fetch = recording_fetch
    PreparedStatement.fetch = recording_prepared
    try:
        yield
    finally:
        asyncpg.Connection.fetch = fetch
        PreparedStatement.fetch = prepared_fetch


async def _statements(url: str, path: str) -> tuple[int, list[Statement]]:
    """The status of GET `path` and the statements the service ran to answer it."""
    settings = Settings(
        _env_file=None,
        database_url=url,
        secret_key=secrets.token_urlsafe(48),
        environment="production",
        metrics="off",
        access_log=False,
    )
    app = create_app(settings)
    recorded: list[Statement] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shapes") as client:
            await client.get(path)  # warm: the first request also reads settings tables
            with _recorded(recorded):
                response = await client.get(path)
    return response.status_code, recorded


async def _explain(url: str, statements: list[Statement]) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        plans = []
        for sql, args in statements:
            # A statement of its own: planned for these values (a custom plan).
            explained = await connection.prepare(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            rows = await explained.fetch(*args)
            plans.append("\n".join(row[0] for row in rows))
        return plans
    finally:
        await connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shapes.explain", description=__doc__)
    parser.add_argument("--only", required=True, help="shapes whose label contains this text")
    parser.add_argument("--items", type=int, default=1_000_000, help="the dataset's size")
    parser.add_argument("--database-url", help="PostgreSQL dataset (default: the bench's)")
    args = parser.parse_args(argv)
    url = args.database_url or default_database_url(args.items)
    engine = create_engine(_oracle_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            chosen = params.choose(conn)
    finally:
        engine.dispose()
    max_tags = Settings(_env_file=None).max_tag_filters
    shapes = [s for s in matrix.build(chosen, max_tags) if args.only in s.label]
    if not shapes:
        parser.error(f"no shape's label contains {args.only!r}")
    for shape in shapes:
        status, statements = asyncio.run(_statements(url, shape.url))
        print(f"=== {shape.label}: GET {shape.url} -> {status}, {len(statements)} statement(s)")
        for (sql, values), plan in zip(
            statements, asyncio.run(_explain(url, statements)), strict=True
        ):
            print(f"--- {sql}\n--- arguments: {values!r}\n{plan}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
