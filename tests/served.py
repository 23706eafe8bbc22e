"""`catalog serve` as its own process, as in production, for tests that need a real server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from deploy.ports import HOST, free_port
from deploy.procs import Process, start_retrying_taken_ports

from tests.conftest import SECRET

CATALOG = str(Path(sys.executable).with_name("catalog"))
START_TIMEOUT = 60.0


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def served_catalog(database_url: str, workdir: Path, **env: str) -> Iterator[str]:
    """Serve the API over `database_url` on a free loopback port, from `workdir` (no .env,
    no key file from the checkout); yield its base URL, stop it afterwards. A port taken
    before uvicorn could bind it (deploy/ports.py hands out closed ports) is chosen again."""
    environment = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    } | env
    port = free_port()
    server: Process | None = None

    def start() -> None:
        nonlocal server
        argv = [CATALOG, "serve", "--host", HOST, "--port", str(port), "--no-access-log"]
        log = workdir / "serve.log"  # appended to by each start
        server = Process("catalog", argv, log, env=environment, cwd=workdir, as_service_user=False)
        server.start()
        base_url = f"http://{HOST}:{port}"
        server.wait_ready(lambda: _healthy(base_url), timeout=START_TIMEOUT, what="GET /health")

    def repick() -> None:
        nonlocal port
        if server is not None:
            server.stop()  # it has exited; this drops its atexit hook
        port = free_port()

    try:
        start_retrying_taken_ports(start, repick)
        yield f"http://{HOST}:{port}"
    finally:
        if server is not None:
            server.stop()
