"""Many processes on one database: several `catalog serve` instances, and `--workers N`.

Real processes, as a deployment runs them. Two instances start at the same moment against
one private PostgreSQL, each doing what its start script does (`catalog db upgrade`, then
`catalog serve` with FIRST_SUPERUSER_*): the schema is migrated once, the superuser created
once, and whatever one instance hands a client (a token, a cursor, an idempotency key, a
login failure) holds on the other. One `catalog serve --workers 2` on an SQLite file, with
no SECRET_KEY, does the same across its workers with the development key file.

Already covered elsewhere, not repeated here: four `catalog db upgrade` racing on each
backend (tests/test_migrations.py), workers' metrics adding up in multiprocess mode and a
killed worker leaving the gauges (tests/telemetry/test_serve.py), the first superuser made
by `catalog serve` before its workers start (tests/test_cli.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from deploy.postgres import PostgresInstance

from catalog.migrations import runner
from tests.faults.harness import CATALOG, CatalogService
from tests.infra.fixtures import start_service
from tests.telemetry import parse_metrics, total

pytestmark = pytest.mark.slow

ROOT_EMAIL, ROOT_PASSWORD = "root@example.com", "first-superuser-pw"
ITEM = "/items/{item_id}"


def _upgrade(service: CatalogService) -> str:
    """`catalog db upgrade` with the instance's settings, in its directory; its stderr."""
    done = subprocess.run(
        [str(CATALOG), "db", "upgrade"],
        env=os.environ | service.env,
        cwd=service.dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def _start_instance(service: CatalogService) -> str:
    """What an instance's start script does: migrate, then serve. The migration's stderr."""
    log = _upgrade(service)
    service.start(timeout=60)
    return log


@dataclass
class Fleet:
    """Two instances of the service on one PostgreSQL database."""

    postgres: PostgresInstance
    instances: list[CatalogService]
    upgrade_logs: list[str]

    @property
    def urls(self) -> list[str]:
        return [instance.url for instance in self.instances]

    def rows(self, query: str) -> list[tuple[object, ...]]:
        return self.postgres.execute(query, database="catalog")


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """Two instances started at the same moment on a fresh database (shared by the module)."""
    with ExitStack() as stack:
        postgres = start_service(PostgresInstance("fleet"), stack)
        url = postgres.create_database("catalog")
        instances = [
            CatalogService(
                url,
                FIRST_SUPERUSER_EMAIL=ROOT_EMAIL,
                FIRST_SUPERUSER_PASSWORD=ROOT_PASSWORD,
                METRICS="on",
                LOGIN_MAX_FAILURES="1",
            )
            for _ in range(2)
        ]
        for instance in instances:
            stack.callback(instance.close)
        with ThreadPoolExecutor(len(instances)) as pool:
            logs = list(pool.map(_start_instance, instances))
        yield Fleet(postgres, instances, logs)


def test_the_schema_is_migrated_by_one_instance(fleet: Fleet) -> None:
    """Both ran `catalog db upgrade` at once: one applied every revision, the other waited
    on the advisory lock and found the database at head (no "Running upgrade" line)."""
    script = ScriptDirectory.from_config(runner.alembic_config())
    head, revisions = script.get_current_head(), list(script.walk_revisions())
    applied = [log.count("Running upgrade") for log in fleet.upgrade_logs]
    assert sorted(applied) == [0, len(revisions)], fleet.upgrade_logs
    assert all(f"The database is at {head}" in log for log in fleet.upgrade_logs)
    assert fleet.rows("SELECT version_num FROM alembic_version") == [(head,)]


def test_the_first_superuser_is_created_once(fleet: Fleet) -> None:
    assert fleet.rows("SELECT email FROM users WHERE is_superuser") == [(ROOT_EMAIL,)]


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/token", data={"username": email, "password": password})


async def _bearer(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await _login(client, email, password)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_what_one_instance_issues_the_other_accepts(fleet: Fleet) -> None:
    """Tokens and cursors (signed with SECRET_KEY) and idempotency keys (in the database)."""
    a_url, b_url = fleet.urls
    async with (
        httpx.AsyncClient(base_url=a_url, timeout=10) as a,
        httpx.AsyncClient(base_url=b_url, timeout=10) as b,
    ):
        root_on_a = await _bearer(a, ROOT_EMAIL, ROOT_PASSWORD)
        me = await b.get("/users/me", headers=root_on_a)
        assert me.status_code == 200, me.text
        assert me.json()["is_superuser"] is True

        body = {"name": "shared-lamp", "price": 2}
        keyed = root_on_a | {"Idempotency-Key": "shared-key-1"}
        created = await a.post("/items", json=body, headers=keyed)
        assert created.status_code == 201, created.text
        replayed = await b.post("/items", json=body, headers=keyed)
        assert replayed.status_code == 201, replayed.text
        assert replayed.headers["idempotent-replayed"] == "true"
        assert replayed.json()["id"] == created.json()["id"]

        await b.post("/items", json=body | {"name": "shared-lamp-2"}, headers=root_on_a)
        first_page = await a.get("/items", params={"limit": 1})
        next_page = await b.get(first_page.links["next"]["url"])
        assert next_page.status_code == 200, next_page.text
        assert next_page.json()[0]["id"] != first_page.json()[0]["id"]


async def test_login_failures_count_on_every_instance(fleet: Fleet) -> None:
    """LOGIN_MAX_FAILURES=1: failures at B block the account at A too, which has seen none.
    B's first failure blocks for 1 s; once that block is over, its second blocks for 2 s.
    Counted per process, B would refuse its second attempt and A would let the owner in."""
    a_url, b_url = fleet.urls
    account = {"email": "throttled@example.com", "password": "throttled-pw-1"}
    async with (
        httpx.AsyncClient(base_url=a_url, timeout=10) as a,
        httpx.AsyncClient(base_url=b_url, timeout=10) as b,
    ):
        assert (await a.post("/users", json=account)).status_code == 201
        assert (await _login(b, account["email"], "wrong-pw-1")).status_code == 401
        # The 1 s block ends: its time passes in the shared counts instead of sleeping.
        fleet.postgres.execute(
            "UPDATE login_failures SET last_failure_at = last_failure_at - interval '2 seconds'",
            database="catalog",
        )
        assert (await _login(b, account["email"], "wrong-pw-2")).status_code == 401
        refused = await _login(a, account["email"], account["password"])
    assert refused.status_code == 429, refused.text
    assert "retry-after" in refused.headers


async def test_each_instance_exposes_its_own_counts(fleet: Fleet) -> None:
    """/metrics is per instance: Prometheus scrapes each target, and `sum()` over them is
    the fleet's total. N requests spread over the two count N in all, each once."""
    a_url, b_url = fleet.urls
    plan = [a_url, b_url] * 7 + [a_url] * 6  # 13 to A, 7 to B, interleaved
    sent = {url: plan.count(url) for url in fleet.urls}
    before = {url: await _item_requests(url) for url in fleet.urls}
    async with httpx.AsyncClient(timeout=10) as client:
        for url in plan:
            assert (await client.get(f"{url}/items/999999")).status_code == 404
    # Counted once the response is sent, so the last count may trail the client: wait.
    deadline = time.monotonic() + 10
    while True:
        counted = {url: await _item_requests(url) - before[url] for url in fleet.urls}
        if counted == sent or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert counted == sent  # each instance its own requests, none of the other's
    assert sum(counted.values()) == len(plan)


async def _item_requests(base_url: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base_url}/metrics")
    assert response.status_code == 200
    return total(parse_metrics(response.text), "catalog_http_requests_total", route=ITEM)


# --- one instance, two workers ---------------------------------------------------------------


def _served_by(service: CatalogService, request_id: str, timeout: float = 10.0) -> int:
    """The pid of the worker whose access line carries `request_id` (written after the
    response, so waited for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in service.log().splitlines():
            if request_id in line and line.startswith("{"):
                record = json.loads(line)
                if record.get("logger") == "catalog.access" and record["request_id"] == request_id:
                    return int(record["pid"])
        time.sleep(0.05)
    raise AssertionError(f"no access line for request {request_id}")


async def test_workers_share_the_development_key_and_the_first_superuser(tmp_path: Path) -> None:
    """`catalog serve --workers 2` without SECRET_KEY: serve creates the key file once, before
    the workers, and a token from either worker is accepted by the other."""
    database = tmp_path / "catalog.db"
    service = CatalogService(
        f"sqlite:///{database}",
        serve_args=("--workers", "2"),
        access_log=True,
        secret_key=None,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        FIRST_SUPERUSER_EMAIL=ROOT_EMAIL,
        FIRST_SUPERUSER_PASSWORD=ROOT_PASSWORD,
    )
    try:
        _start_instance(service)
        tokens: dict[int, dict[str, str]] = {}  # worker pid -> a token that worker issued
        checked: set[tuple[int, int]] = set()  # (issuer, acceptor) pairs seen to work
        # A fresh connection per request: uvicorn's workers share the listening socket, and
        # the kernel hands each new connection to one of them.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=service.url, timeout=10, limits=limits) as client:
            for attempt in range(200):  # bounded: a pair is missing only by bad luck
                if len(checked) == 2:
                    break
                request_id = f"w{attempt}"
                if len(tokens) < 2 or attempt % 2:
                    response = await client.post(
                        "/auth/token",
                        data={"username": ROOT_EMAIL, "password": ROOT_PASSWORD},
                        headers={"X-Request-ID": request_id},
                    )
                    assert response.status_code == 200, response.text
                    bearer = f"Bearer {response.json()['access_token']}"
                    tokens[_served_by(service, request_id)] = {"Authorization": bearer}
                    continue
                for issuer, headers in tokens.items():
                    response = await client.get(
                        "/users/me", headers=headers | {"X-Request-ID": f"{request_id}-{issuer}"}
                    )
                    assert response.status_code == 200, response.text
                    acceptor = _served_by(service, f"{request_id}-{issuer}")
                    if acceptor != issuer:
                        checked.add((issuer, acceptor))
        assert len(checked) == 2, f"not every worker accepted the other's token: {checked}"
        assert [p.name for p in service.dir.iterdir() if "secret_key" in p.name] == [".secret_key"]
        with sqlite3.connect(database) as connection:
            superusers = connection.execute("SELECT email FROM users WHERE is_superuser").fetchall()
        assert superusers == [(ROOT_EMAIL,)]
    finally:
        service.close()
