"""`catalog serve` for real: several uvicorn workers, their metrics, their log lines.

Each test starts the service as a subprocess on free loopback ports, against the
session's migrated database, and stops it (its whole process group) at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy.ports import HOST, free_port
from deploy.procs import (
    ADDRESS_IN_USE,
    PortInUseError,
    Process,
    StartError,
    start_retrying_taken_ports,
)

from catalog.db.database import Database
from tests.conftest import SECRET, sqlite_only
from tests.telemetry import parse_metrics, total
from tests.waiting import eventually_sync

CATALOG = str(Path(sys.executable).with_name("catalog"))
START_TIMEOUT_S = 60.0


@dataclass
class Served:
    """A running `catalog serve`: its URLs and what it logged so far."""

    base_url: str
    log_path: Path
    process: Process
    metrics_port: int | None = None

    @property
    def metrics_url(self) -> str:
        """The metrics port's scrape URL."""
        assert self.metrics_port is not None, "served without a metrics port of its own"
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_lines()]


# METRICS=FREE_PORT: metrics on a port of their own, a free one chosen at each start.
FREE_PORT = "free port"
# `catalog serve` reports a taken metrics port in its own words, not the OS's.
METRICS_PORT_TAKEN = re.compile(r"METRICS: port \d+ is not available")


@contextmanager
def serve(database_url: str, tmp_path: Path, *args: str, **env: str) -> Iterator[Served]:
    """`catalog serve` on a free port (and with METRICS=FREE_PORT, metrics on another);
    started again on new ports if one was taken before it could be bound (deploy/ports.py
    hands out ports it has closed). Each start logs to serve-<n>.log."""
    environment = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "test",
        "LOG_FORMAT": "json",
    } | env
    starts: list[Served] = []

    def start() -> None:
        port, metrics = free_port(), free_port() if env.get("METRICS") == FREE_PORT else None
        log_path = tmp_path / f"serve-{len(starts) + 1}.log"
        metrics_env = {} if metrics is None else {"METRICS": str(metrics)}
        process = Process(
            "catalog serve",
            [CATALOG, "serve", "--port", str(port), *args],
            log_path,  # and its directory, tmp_path, is the working directory: no .env
            env=environment | metrics_env,
            as_service_user=False,
        )
        starts.append(Served(f"http://{HOST}:{port}", log_path, process, metrics))
        process.start()
        try:
            process.wait_ready(
                lambda: _healthy(starts[-1]), timeout=START_TIMEOUT_S, what="GET /health"
            )
        except StartError as error:
            if METRICS_PORT_TAKEN.search(str(error)):
                raise PortInUseError(str(error)) from error
            raise

    try:
        start_retrying_taken_ports(start, repick=lambda: None)  # each start picks its ports
        yield starts[-1]
    finally:
        for served in starts:
            served.process.stop(timeout=20)


def _healthy(served: Served) -> bool:
    try:
        return httpx.get(f"{served.base_url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


async def _spread_requests(served: Served, path: str, workers: int) -> int:
    """GET `path` on fresh connections until every worker has answered; how many sent."""
    sent = 0
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection each time
    async with httpx.AsyncClient(base_url=served.base_url, limits=limits, timeout=30) as client:
        for _ in range(100):  # rounds of 20 concurrent requests (bounded)
            responses = await asyncio.gather(*(client.get(path) for _ in range(20)))
            assert all(r.status_code == 404 for r in responses)
            sent += len(responses)
            pids = {
                line["pid"] for line in served.json_lines() if line["logger"] == "catalog.access"
            }
            if len(pids) >= workers:
                return sent
    pytest.fail(f"the requests never reached {workers} workers")


@pytest.mark.parametrize("exposure", ["port", "on"])
async def test_two_workers_count_every_request_exactly_once(
    exposure: str, database_url: str, database: Database, tmp_path: Path
) -> None:
    metrics = FREE_PORT if exposure == "port" else "on"
    with serve(database_url, tmp_path, "--workers", "2", METRICS=metrics) as served:
        sent = await _spread_requests(served, "/items/999999", workers=2)
        if exposure == "port":
            # Served by `catalog serve` itself, on loopback, not on the main port.
            scrape_url = served.metrics_url
            assert (await _get(f"{served.base_url}/metrics")).status_code == 404
        else:
            scrape_url = f"{served.base_url}/metrics"
        labels = {"method": "GET", "route": "/items/{item_id}"}
        # A request is counted once its response is sent: the last ones may still be
        # counting when the client has its answer. Wait (bounded) for the total...
        deadline = time.monotonic() + 10
        samples = parse_metrics((await _get(scrape_url)).text)
        while total(samples, "catalog_http_requests_total", **labels) < sent:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
            samples = parse_metrics((await _get(scrape_url)).text)
        # ...then every scrape, whichever process answers it, sees exactly that total.
        for _ in range(4):
            samples = parse_metrics((await _get(scrape_url)).text)
            assert total(samples, "catalog_http_requests_total", **labels) == sent
            assert total(samples, "catalog_http_request_duration_seconds_count", **labels) == sent
        directory = _multiprocess_directory(served)
        assert directory.is_dir()
        # Pool gauges are each worker's, summed: twice one worker's pool.
        one_pool = database.engine.pool.size()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10  # sampled once a second by each worker
        while total(samples, "catalog_db_pool_size") != 2 * one_pool:
            assert time.monotonic() < deadline, total(samples, "catalog_db_pool_size")
            await asyncio.sleep(0.2)
            samples = parse_metrics((await _get(scrape_url)).text)
    assert not directory.exists()  # removed when catalog serve stopped


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(url)


def _workers(served: Served) -> list[int]:
    """The pids of the uvicorn workers `catalog serve` runs now (from /proc)."""
    pid = served.process.pid
    workers = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue  # gone meanwhile
        # Not multiprocessing's resource tracker; a killed worker is a zombie: no cmdline.
        if b"spawn_main" in command:
            workers.append(int(child))
    return workers


def _multiprocess_directory(served: Served) -> Path:
    """The PROMETHEUS_MULTIPROC_DIR the workers were started with (from /proc)."""
    workers = _workers(served)
    assert workers, "catalog serve has no worker processes"
    environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
    [entry] = [e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(entry.split(b"=", 1)[1].decode())


async def test_no_secret_reaches_any_log_line(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    """Passwords, tokens, Authorization headers, cursors and queries: sent, never logged."""
    password, new_password, wrong = "Sw0rdfish-first-pw", "Sw0rdfish-second-pw", "Wr0ng-guess-pw"
    email = "secret-keeper@example.com"
    forged = "Bearer forged.token.value-xyz"
    basic = "Basic c2VjcmV0LWtlZXBlcjpiYXNpYy1wdw=="
    query = "zq-private-search"
    secrets: list[str] = [password, new_password, wrong, forged, basic, query, "$argon2"]
    sent = 0
    with serve(database_url, tmp_path, LOG_LEVEL="DEBUG", METRICS="on") as served:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as client:

            async def send(method: str, path: str, status: int, **kwargs: Any) -> httpx.Response:
                nonlocal sent
                response = await client.request(method, path, **kwargs)
                assert response.status_code == status, response.text
                sent += 1
                return response

            body = {"email": email, "password": password, "full_name": "Keeper"}
            await send("POST", "/users", 201, json=body)
            await send("POST", "/users", 409, json=body)  # the database refuses: no params
            await send("POST", "/users", 422, json=body | {"password": "short"})
            form = {"username": email, "password": password}
            token = (await send("POST", "/auth/token", 200, data=form)).json()["access_token"]
            await send("POST", "/auth/token", 401, data=form | {"password": wrong})
            bearer = {"Authorization": f"Bearer {token}"}
            secrets += [token, token.rsplit(".", 1)[-1]]
            await send("GET", "/users/me", 200, headers=bearer)
            await send("GET", "/users/me", 401, headers={"Authorization": forged})
            await send("GET", "/users/me", 401, headers={"Authorization": basic})
            for name in ("first", "second", "third"):
                await send("POST", "/items", 201, headers=bearer, json={"name": name, "price": 1})
            change = {"password": new_password, "current_password": password}
            await send("PATCH", "/users/me", 200, headers=bearer, json=change)
            page = await send("GET", f"/items?limit=1&q={query}", 200)
            page = await send("GET", "/items?limit=1", 200)
            cursor = page.links["next"]["url"].split("cursor=", 1)[1]
            secrets.append(cursor)
            await send("GET", f"/items?limit=1&cursor={cursor}", 200)
            await send("GET", f"/items?cursor={cursor}x", 422)
    lines = served.log_lines()  # complete now that the server has stopped

    assert lines, "nothing was logged"
    records = [json.loads(line) for line in lines]  # every line is JSON, uvicorn's included
    assert {"uvicorn.error", "catalog.access"} <= {r["logger"] for r in records}
    access = [r for r in records if r["logger"] == "catalog.access" and r["route"] != "/health"]
    assert len(access) == sent  # each request logged once (uvicorn's access log is off)
    assert not [r for r in records if r["logger"] == "uvicorn.access"]
    leaks = {secret: [line for line in lines if secret in line] for secret in secrets}
    assert {secret: found for secret, found in leaks.items() if found} == {}


async def test_a_killed_worker_leaves_the_live_gauges(
    database_url: str, database: Database, tmp_path: Path
) -> None:
    """A worker that dies without cleaning up (SIGKILL) no longer counts in the gauges."""
    one_pool = database.engine.pool.size()  # type: ignore[attr-defined]

    async def pool_sizes_reach(expected: float) -> None:
        deadline = time.monotonic() + 20  # sampled once a second by each worker
        while True:
            samples = parse_metrics((await _get(served.metrics_url)).text)
            if total(samples, "catalog_db_pool_size") == expected:
                return
            assert time.monotonic() < deadline, total(samples, "catalog_db_pool_size")
            await asyncio.sleep(0.2)

    with serve(database_url, tmp_path, "--workers", "2", METRICS=FREE_PORT) as served:
        await pool_sizes_reach(2 * one_pool)
        victim = _workers(served)[0]
        os.kill(victim, signal.SIGKILL)
        # uvicorn starts a new worker; the dead one's gauges must not add to the totals.
        deadline = time.monotonic() + 30
        while victim in _workers(served) or len(_workers(served)) < 2:
            assert time.monotonic() < deadline, _workers(served)
            await asyncio.sleep(0.2)
        await pool_sizes_reach(2 * one_pool)
        await asyncio.sleep(1.5)  # a full sampling period later: still two workers' worth
        await pool_sizes_reach(2 * one_pool)


# --- TRUSTED_PROXIES: whose X-Forwarded-For is believed ----------------------------------------


@pytest.mark.parametrize("trusted", [False, True])
async def test_forwarded_addresses_count_only_from_trusted_proxies(
    database_url: str, tmp_path: Path, trusted: bool
) -> None:
    """Through a real `catalog serve` (uvicorn's proxy headers, not a mock): a peer that is
    not in TRUSTED_PROXIES cannot choose the client address by sending X-Forwarded-For, so
    its failed logins all count against its own address (the third is refused with
    LOGIN_MAX_FAILURES_PER_ADDRESS=2); a trusted proxy's forwarded addresses are believed,
    so each counts against its own client, and the access log names that client."""
    env = {"LOGIN_MAX_FAILURES_PER_ADDRESS": "2"}
    if trusted:
        env["TRUSTED_PROXIES"] = HOST  # the test's connections come from 127.0.0.1
    with serve(database_url, tmp_path, **env) as served:
        statuses = []
        async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
            for n in range(3):
                response = await client.post(
                    "/auth/token",
                    data={"username": f"nobody{n}@example.com", "password": "wrong-password"},
                    headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
                )
                statuses.append(response.status_code)

        def clients() -> list[str] | None:
            lines = [r for r in served.json_lines() if r.get("route") == "/auth/token"]
            return [r["client"] for r in lines] if len(lines) == 3 else None

        logged = eventually_sync(clients, what="three access lines for /auth/token")
    if trusted:
        assert statuses == [401, 401, 401]
        assert [c.split(":")[0] for c in logged] == [f"203.0.113.{n}" for n in (1, 2, 3)]
    else:
        assert statuses == [401, 401, 429]
        assert {c.split(":")[0] for c in logged} == {HOST}


@sqlite_only  # the subject is the ports, not the database
@pytest.mark.parametrize("taken", ["port", "metrics port"])
def test_serve_starts_again_on_new_ports_when_one_was_taken(
    taken: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port handed out for the first start is already taken (the test listens on it):
    `catalog serve` cannot bind it, and `serve` starts it again on new ports."""
    real_free_port = free_port
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        taken_port = holder.getsockname()[1]
        # Each start asks for its port, then for its metrics port.
        ports = iter([taken_port] if taken == "port" else [real_free_port(), taken_port])
        monkeypatch.setattr(
            sys.modules[__name__], "free_port", lambda: next(ports, 0) or real_free_port()
        )
        with serve(database_url, tmp_path, METRICS=FREE_PORT) as served:
            assert served.log_path.name == "serve-2.log"
            assert taken_port not in (int(served.base_url.rsplit(":", 1)[1]), served.metrics_port)
            assert httpx.get(f"{served.base_url}/health", timeout=10).status_code == 200
            assert httpx.get(served.metrics_url, timeout=10).status_code == 200
        first_log = (tmp_path / "serve-1.log").read_text()
        refusal = ADDRESS_IN_USE if taken == "port" else METRICS_PORT_TAKEN
        assert refusal.search(first_log), first_log
