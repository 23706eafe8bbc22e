"""The fault suite's tools: a real Catalog service process, and a load that keeps score.

`CatalogService` runs `catalog serve` (uvicorn, as in production) on a free loopback port
against a given database. `Load` drives it with concurrent clients that write items and
read them back, recording every answer: status, latency, Retry-After, and which writes
were acknowledged, so a test can check what survived a fault.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from deploy.ports import free_port
from deploy.procs import Process, private_dir, remove_dir, start_retrying_taken_ports

CATALOG = Path(sys.executable).parent / "catalog"
SECRET = "fault-suite-secret-" + "k" * 32
# Small bounds, so a fault shows its effect within seconds and a test stays short.
FAULT_SETTINGS = {
    "DB_CONNECT_TIMEOUT": "1",
    "DB_STATEMENT_TIMEOUT_MS": "2000",
    "DB_LOCK_TIMEOUT_MS": "1000",
    "DB_POOL_TIMEOUT": "1",
    "DB_POOL_SIZE": "10",
    "REQUEST_TIMEOUT": "4",
    "RETRY_AFTER_SECONDS": "1",
    "SHUTDOWN_TIMEOUT": "3",
}
# The longest any request may take: the request deadline plus scheduling slack.
LATENCY_BOUND = 4 + 2.0


class CatalogService:
    """`catalog serve` on a free port, as its own process group.

    `serve_args` go to `catalog serve` (e.g. `("--workers", "2")`); `access_log` turns its
    per-request log lines on; `secret_key=None` leaves SECRET_KEY unset, so the service
    uses its development key file (in the service's own directory, its working directory).
    A port of our choosing taken by another process before the first start is chosen again;
    a `port` given by the caller is kept (failing is right, moving silently is not).
    """

    def __init__(
        self,
        database_url: str,
        *,
        port: int | None = None,
        serve_args: Sequence[str] = (),
        access_log: bool = False,
        secret_key: str | None = SECRET,
        **settings: str,
    ) -> None:
        self._may_repick_port = port is None
        self.port = port or free_port()
        self.serve_args = tuple(serve_args)
        self.access_log = access_log
        self.dir = private_dir("catalog-service")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATABASE_URL": database_url,
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "WARNING",
            **FAULT_SETTINGS,
            **settings,
        }
        if secret_key is not None:
            self.env["SECRET_KEY"] = secret_key
        self.process = self._process()

    def _process(self) -> Process:
        """The `catalog serve` process for `self.port` (its log is appended to by each)."""
        log_option = "--access-log" if self.access_log else "--no-access-log"
        return Process(
            "catalog",
            [str(CATALOG), "serve", "--port", str(self.port), log_option, *self.serve_args],
            self.dir / "service.log",
            env=self.env,
            cwd=self.dir,
            as_service_user=False,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the service and wait until it answers /health."""
        if not self._may_repick_port:
            self._start(timeout)
            return
        self._may_repick_port = False

        def repick() -> None:
            self.process.stop()  # it has exited; this drops its atexit hook
            self.port = free_port()
            self.process = self._process()

        start_retrying_taken_ports(lambda: self._start(timeout), repick)

    def _start(self, timeout: float) -> None:
        self.process.start()
        self.process.wait_ready(self._healthy, timeout=timeout, what="answering /health")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM (graceful shutdown); the seconds it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        if not self.process.wait_exit(timeout):
            raise AssertionError(f"the service did not exit within {timeout} s")
        return time.monotonic() - started

    def close(self) -> None:
        self.process.stop(timeout=10)
        remove_dir(self.dir)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


def catalog_command(
    database_url: str, *args: str, pooler: str = "none"
) -> subprocess.CompletedProcess[str]:
    """Run `catalog *args` (e.g. "db", "upgrade") against `database_url`; its outcome."""
    env = {
        "DATABASE_URL": database_url,
        "DATABASE_POOLER": pooler,
        "SECRET_KEY": SECRET,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [str(CATALOG), *args], env=env, capture_output=True, text=True, timeout=120
    )


def unhandled_errors(log: str) -> str:
    """A service log's unhandled errors, each with the last lines of its traceback."""
    blocks = log.split("unhandled error")[1:]
    return "\n---\n".join("\n".join(b.splitlines()[-6:]) for b in blocks[:5])


@contextmanager
def running_service(
    database_url: str, *, serve_args: Sequence[str] = (), **settings: Any
) -> Iterator[CatalogService]:
    """A started `CatalogService` (arguments as for it), closed at the end of the block."""
    service = CatalogService(database_url, port=None, serve_args=serve_args, **settings)
    try:
        service.start()
        yield service
    finally:
        service.close()


@dataclass
class Answer:
    """One request as the load saw it."""

    kind: str  # "write" or "read"
    started: float
    elapsed: float
    status: int | None  # None: no HTTP answer (connection refused or reset)
    retry_after: str | None = None
    error: str | None = None  # the transport error, or the detail of a 503


@dataclass
class Load:
    """Concurrent clients writing items and reading them back, keeping score."""

    base_url: str
    token: str
    clients: int = 8  # below the pool size (10): no request waits for a connection
    answers: list[Answer] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)  # item name -> id (201)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def signed_up(cls, base_url: str, **kwargs: Any) -> Load:
        """A load on behalf of a newly registered user."""
        account = {"email": f"load{time.monotonic_ns()}@example.com", "password": "load-pass-1"}
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            created = await client.post("/users", json=account)
            assert created.status_code == 201, created.text
            login = {"username": account["email"], "password": account["password"]}
            token = (await client.post("/auth/token", data=login)).json()["access_token"]
        return cls(base_url, token, **kwargs)

    async def _client(self, number: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=30, limits=limits
        ) as client:
            sequence, last_id = 0, None
            while not self._stop.is_set():
                sequence += 1
                name = f"c{number}-{sequence}"
                if last_id is None or sequence % 2:
                    answer, body = await self._send(
                        client, "write", "POST", "/items", {"name": name, "price": 1}
                    )
                    if answer.status == 201:
                        self.acknowledged[name] = last_id = body["id"]
                else:
                    await self._send(client, "read", "GET", f"/items/{last_id}", None)
                await asyncio.sleep(0.01)

    async def _send(
        self, client: httpx.AsyncClient, kind: str, method: str, url: str, body: Any
    ) -> tuple[Answer, Any]:
        started = time.monotonic()
        try:
            response = await client.request(method, url, json=body)
        except httpx.TransportError as error:
            answer = Answer(kind, started, time.monotonic() - started, None, error=repr(error))
            self.answers.append(answer)
            await asyncio.sleep(0.1)  # nobody is listening: do not spin
            return answer, None
        answer = Answer(
            kind,
            started,
            time.monotonic() - started,
            response.status_code,
            response.headers.get("retry-after"),
            response.text if response.status_code >= 500 else None,
        )
        self.answers.append(answer)
        if response.status_code == 503:
            await asyncio.sleep(0.05)
        return answer, response.json() if response.status_code in (200, 201) else None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        """Keep the clients busy for the duration of the block."""
        tasks = [asyncio.create_task(self._client(n)) for n in range(self.clients)]
        try:
            yield self
        finally:
            self._stop.set()
            async with asyncio.timeout(60):
                await asyncio.gather(*tasks)

    # --- what happened ---------------------------------------------------------------------

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a.started < end]

    def statuses(self, answers: list[Answer] | None = None) -> dict[int | None, int]:
        counts: dict[int | None, int] = {}
        for answer in self.answers if answers is None else answers:
            counts[answer.status] = counts.get(answer.status, 0) + 1
        return counts


def lost_writes(database_url: str, load: Load) -> list[str]:
    """Acknowledged items (201) that are not in the database, or not under their id."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        stored: dict[str, int] = dict(conn.execute("SELECT name, id FROM items").fetchall())
    return sorted(
        name for name, item_id in load.acknowledged.items() if stored.get(name) != item_id
    )


async def wait_for_success(base_url: str, token: str, within: float) -> float:
    """Seconds until a write succeeds again (at most `within`)."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        while time.monotonic() - started < within:
            try:
                response = await client.post("/items", json={"name": "probe", "price": 1})
                if response.status_code == 201:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"no successful write within {within} s of the fault's end")
