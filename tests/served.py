"""`catalog serve` as its own process, as in production, for tests that need a real server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from deploy.ports import HOST, free_port
from deploy.procs import Process

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
    no key file from the checkout); yield its base URL, stop it afterwards."""
    port = free_port()
    environment = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    } | env
    argv = [CATALOG, "serve", "--host", HOST, "--port", str(port), "--no-access-log"]
    server = Process(
        "catalog", argv, workdir / "serve.log", env=environment, cwd=workdir, as_service_user=False
    )
    server.start()
    base_url = f"http://{HOST}:{port}"
    try:
        server.wait_ready(lambda: _healthy(base_url), timeout=START_TIMEOUT, what="GET /health")
        yield base_url
    finally:
        server.stop()
