"""What each request costs the database: SQL statements and protocol round trips.

Both apps run in this process (httpx's ASGITransport, no sockets to them), connected to
PostgreSQL through a small proxy that reads the client's side of the wire protocol:

- every `Sync` ends an extended-protocol exchange and every simple `Query` is one exchange
  too, so Sync + Query = round trips the request waited for;
- `Execute` + simple `Query` = statements run (BEGIN/COMMIT included);
- `Parse` = statements prepared (a miss of the driver's prepared-statement cache);
- a simple `Query` of BEGIN = a transaction opened.

For the service, statements are also counted where SQLAlchemy sends them (a
`before_cursor_execute` listener on the app's engine).
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

SSL_REQUEST, GSS_REQUEST = 80877103, 80877104


@dataclass(frozen=True)
class Probe:
    """One request of a scenario, as the in-process client sends it."""

    method: str
    path: str  # path and query string
    body: bytes | None = None
    authenticated: bool = False


@dataclass(frozen=True)
class QueryCounts:
    """Per request, averaged over the repetitions."""

    statements: float | None  # SQLAlchemy's count (service only)
    executes: float
    round_trips: float
    transactions: float
    prepares: float
    status: int


class WireCounter:
    """A TCP proxy to PostgreSQL that counts the client's protocol messages by type."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_r, server_w = await asyncio.open_connection(self.host, self.port)
        try:
            # Start-up: refuse encryption (we must read the stream), pass the rest on.
            while True:
                head = await client_r.readexactly(8)
                length, code = struct.unpack("!ii", head)
                if code in (SSL_REQUEST, GSS_REQUEST):
                    client_w.write(b"N")
                    await client_w.drain()
                    continue
                server_w.write(head + await client_r.readexactly(length - 8))
                break
            await _first_of(self._client_to_server(client_r, server_w), _pipe(server_r, client_w))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for writer in (client_w, server_w):
                writer.close()
            self._tasks.discard(task)

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            head = await reader.readexactly(5)
            body = await reader.readexactly(int.from_bytes(head[1:], "big") - 4)
            kind = chr(head[0])
            self.counts[kind] += 1
            if kind == "Q":
                words = body.rstrip(b"\0").decode(errors="replace").split()
                self.counts["Q:" + (words[0].upper().rstrip(";") if words else "")] += 1
            writer.write(head + body)
            await writer.drain()

    def snapshot(self) -> Counter[str]:
        return Counter(self.counts)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def _first_of(*coroutines: Any) -> None:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _proxied(url: str, port: int) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", host="127.0.0.1", port=port)
        .render_as_string(hide_password=False)
    )


async def _measure(
    client: httpx.AsyncClient,
    wire: WireCounter,
    probes: dict[str, Probe],
    token: str,
    repeat: int,
    statements: Callable[[], int] | None,
) -> dict[str, QueryCounts]:
    results: dict[str, QueryCounts] = {}
    for name, probe in probes.items():
        headers = {"Authorization": f"Bearer {token}"} if probe.authenticated else {}
        if probe.body is not None:
            headers["Content-Type"] = "application/json"

        async def send(probe: Probe = probe, headers: dict[str, str] = headers) -> int:
            response = await client.request(
                probe.method, probe.path, content=probe.body, headers=headers
            )
            return response.status_code

        await send()  # warm: connections opened, statements prepared, caches filled
        before_wire = wire.snapshot()
        before_sql = statements() if statements else 0
        status = 0
        for _ in range(repeat):
            status = await send()
        await asyncio.sleep(0.05)  # let the proxy forward the last messages
        wire_delta = wire.snapshot() - before_wire
        results[name] = QueryCounts(
            statements=(statements() - before_sql) / repeat if statements else None,
            executes=(wire_delta["E"] + wire_delta["Q"]) / repeat,
            round_trips=(wire_delta["S"] + wire_delta["Q"]) / repeat,
            transactions=(wire_delta["Q:BEGIN"] + wire_delta["Q:START"]) / repeat,
            prepares=wire_delta["P"] / repeat,
            status=status,
        )
    return results


@asynccontextmanager
async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client,
    ):
        yield client


async def _count_all(
    url: str,
    secret: str,
    token: str,
    probes: dict[str, dict[str, Probe]],
    repeat: int,
    server_settings: dict[str, str],
) -> dict[str, dict[str, QueryCounts]]:
    from bench.baseline import create_app as create_baseline
    from catalog.api.app import create_app
    from catalog.config import load_settings

    parsed = make_url(url)
    wire = WireCounter(parsed.host or "127.0.0.1", parsed.port or 5432)
    port = await wire.start()
    results: dict[str, dict[str, QueryCounts]] = {}
    try:
        settings = load_settings(
            database_url=_proxied(url, port), secret_key=secret, log_level="WARNING"
        )
        service = create_app(settings)
        async with _client(service) as client:
            executed = 0

            def count(*args: Any) -> None:
                nonlocal executed
                executed += 1

            engine = service.state.database.engine.sync_engine
            event.listen(engine, "before_cursor_execute", count)
            try:
                results["service"] = await _measure(
                    client, wire, probes["service"], token, repeat, lambda: executed
                )
            finally:
                event.remove(engine, "before_cursor_execute", count)
        if "baseline" in probes:
            baseline = create_baseline(
                _proxied(url, port), secret, 1, 2, server_settings=server_settings
            )
            async with _client(baseline) as client:
                results["baseline"] = await _measure(
                    client, wire, probes["baseline"], token, repeat, None
                )
    finally:
        await wire.close()
    return results


def count_queries(
    url: str,
    secret: str,
    token: str,
    probes: dict[str, dict[str, Probe]],
    *,
    server_settings: dict[str, str],
    repeat: int = 3,
) -> dict[str, dict[str, QueryCounts]]:
    """server ("service"/"baseline") -> scenario -> what one request costs the database."""
    return asyncio.run(_count_all(url, secret, token, probes, repeat, server_settings))


async def _session_settings(url: str, secret: str) -> dict[str, str]:
    from catalog.config import load_settings
    from catalog.db.engine import create_async_db_engine

    engine = create_async_db_engine(load_settings(database_url=url, secret_key=secret))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT name, setting FROM pg_settings"
                    " WHERE source = 'client' AND name <> 'application_name'"
                )
            )
            return {str(row[0]): str(row[1]) for row in rows}
    finally:
        await engine.dispose()


def service_session_settings(url: str, secret: str) -> dict[str, str]:
    """The PostgreSQL settings the service's connections set at connect time (e.g. jit)."""
    return asyncio.run(_session_settings(url, secret))
