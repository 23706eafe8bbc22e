"""Prometheus metrics served in-process (one process): what is counted, and how.

Metric values are process-wide and cumulative, so every test compares two scrapes.
"""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import column, select, table, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from catalog import hooks
from catalog.api.app import create_app
from catalog.config import Settings
from catalog.db.compiled import CompiledQuery
from catalog.db.database import Database
from catalog.db.observe import WaitCountingPool, statement_executed
from catalog.db.urls import resolve_urls
from catalog.telemetry import exposition
from tests.conftest import MakeUser, make_settings
from tests.telemetry import Samples, parse_metrics, running, total, value
from tests.waiting import eventually

REQUESTS = "catalog_http_requests_total"
DURATION_COUNT = "catalog_http_request_duration_seconds_count"
STATEMENTS = "catalog_db_statement_duration_seconds_count"


def metrics_app(settings: Settings, database: Database, **overrides: object) -> FastAPI:
    return create_app(make_settings(settings.database_url, metrics="on", **overrides), database)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse_metrics(response.text)


async def test_metrics_off_by_default_serves_404_and_collects_nothing(
    settings: Settings, database: Database, make_user: MakeUser
) -> None:
    assert settings.metrics == "off"
    owner = await make_user()
    before = exposition.render()
    async with running(create_app(settings, database)) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/items/1")).status_code == 404
        await client.post("/auth/token", data={"username": owner.email, "password": "wrong"})
        # Nobody listens to the database or the login path.
        assert not statement_executed
        assert not hooks.login_failed
    assert exposition.render() == before


async def test_requests_are_counted_by_route_template_method_and_status_class(
    settings: Settings, database: Database, make_user: MakeUser
) -> None:
    owner = await make_user()
    async with running(metrics_app(settings, database)) as client:
        created = await client.post(
            "/items", json={"name": "lamp", "price": 3}, headers=owner.headers
        )
        item_id = created.json()["id"]
        before = await scrape(client)
        for _ in range(3):
            assert (await client.get(f"/items/{item_id}")).status_code == 200
        for _ in range(2):
            assert (await client.get("/items/999999")).status_code == 404
        assert (await client.get(f"/no/such/{item_id}")).status_code == 404
        assert (await client.delete("/health")).status_code == 405
        assert (await client.request("BREW", "/health")).status_code == 405
        after = await scrape(client)

    def delta(method: str, route: str, status: str) -> float:
        labels = {"method": method, "route": route, "status": status}
        counted = value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels)
        timed = value(after, DURATION_COUNT, **labels) - value(before, DURATION_COUNT, **labels)
        assert counted == timed  # the histogram saw every counted request
        return counted

    assert delta("GET", "/items/{item_id}", "2xx") == 3
    assert delta("GET", "/items/{item_id}", "4xx") == 2
    assert delta("GET", "unmatched", "4xx") == 1  # one fixed label for every unknown path
    assert delta("DELETE", "/health", "4xx") == 1
    assert delta("other", "/health", "4xx") == 1  # methods are the client's: bounded
    routes = {
        dict(labels)["route"]
        for (name, labels), count in after.items()
        if name == REQUESTS and count != before.get((name, labels), 0)
    }
    templates = set(metrics_app(settings, database).openapi()["paths"])
    assert routes <= templates | {"/metrics", "unmatched"}  # never a raw path


async def test_a_mounted_application_is_labelled_by_mount_and_route(
    settings: Settings, database: Database
) -> None:
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["name"])

    app = metrics_app(settings, database)
    app.mount("/test-mounted", Starlette(routes=[Route("/pages/{name}", page)]))
    async with running(app) as client:
        before = await scrape(client)
        for name in ("a", "b"):
            assert (await client.get(f"/test-mounted/pages/{name}")).status_code == 200
        assert (await client.get("/test-mounted/nothing/here")).status_code == 404
        after = await scrape(client)

    def delta(route: str, status: str) -> float:
        labels = {"method": "GET", "route": route, "status": status}
        return value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels)

    assert delta("/test-mounted/pages/{name}", "2xx") == 2
    assert delta("/test-mounted/{path}", "4xx") == 1


async def test_statements_are_timed_on_every_execution_path(
    settings: Settings, database: Database, make_user: MakeUser
) -> None:
    owner = await make_user()
    seen: list[tuple[str, bool]] = []  # what the database layer's hook reported

    def record(backend: str, sql: str, started: int, ended: int, error: object) -> None:
        assert ended >= started
        seen.append((sql, error is None))

    async with running(metrics_app(settings, database)) as client:
        item = await client.post("/items", json={"name": "lamp", "price": 3}, headers=owner.headers)
        stop = statement_executed.subscribe(record)
        try:
            before, reads, after = await _statements_on_every_path(client, database, item, seen)
        finally:
            stop()  # even when an assertion failed: the hook is process-wide

    def delta(outcome: str, first: Samples, second: Samples) -> float:
        return value(second, STATEMENTS, outcome=outcome) - value(
            first, STATEMENTS, outcome=outcome
        )

    assert delta("ok", before, reads) == 4
    assert "SELECT 1" in [sql for sql, ok in seen[4:] if ok]
    # The metric counts what the hook saw (SQLite's BEGIN IMMEDIATE statements included).
    assert delta("ok", reads, after) == sum(ok for _, ok in seen[4:])
    assert delta("error", before, after) == sum(not ok for _, ok in seen) == 3


async def _statements_on_every_path(
    client: httpx.AsyncClient,
    database: Database,
    item: httpx.Response,
    seen: list[tuple[str, bool]],
) -> tuple[Samples, Samples, Samples]:
    before = await scrape(client)
    # A read is one precompiled statement: on PostgreSQL it runs on the raw asyncpg
    # connection, which SQLAlchemy's events never see.
    for _ in range(4):
        await client.get(f"/items/{item.json()['id']}")
    reads = await scrape(client)
    assert len(seen) == 4
    assert all(ok and "FROM items" in sql for sql, ok in seen)
    # Through SQLAlchemy (a session's transaction), on both databases.
    async with database.transaction() as session:
        await session.execute(text("SELECT 1"))
    missing = CompiledQuery(select(column("x")).select_from(table("no_such_table")))
    for _ in range(2):
        with pytest.raises(Exception, match="no_such_table"):
            async with database.unit_of_work() as uow:
                await uow.fetch_all(missing)  # the raw path on PostgreSQL
    with pytest.raises(Exception, match="no_such_table"):
        async with database.transaction() as session:
            await session.execute(text("SELECT x FROM no_such_table"))
    after = await scrape(client)
    return before, reads, after


async def test_failed_logins_are_counted_by_reason(
    settings: Settings, database: Database, make_user: MakeUser
) -> None:
    good = await make_user("good@example.com", "right-password")
    await make_user("gone@example.com", "right-password", is_active=False)
    attempts = [
        ("good@example.com", "wrong-password", 401),
        ("nobody@example.com", "right-password", 401),
        ("gone@example.com", "right-password", 403),
        (good.email, "right-password", 200),
    ]
    async with running(metrics_app(settings, database)) as client:
        before = await scrape(client)
        for email, password, status in attempts:
            response = await client.post(
                "/auth/token", data={"username": email, "password": password}
            )
            assert response.status_code == status
        after = await scrape(client)

    def failures(reason: str) -> float:
        name = "catalog_login_failures_total"
        return value(after, name, reason=reason) - value(before, name, reason=reason)

    assert (failures("invalid_credentials"), failures("inactive")) == (2, 1)


async def test_503_responses_are_counted_as_shed_by_route(
    settings: Settings, database: Database
) -> None:
    app = metrics_app(settings, database)

    @app.get("/test-unavailable/{part}")
    async def unavailable(part: str) -> JSONResponse:
        return JSONResponse({"detail": "Service Unavailable"}, status_code=503)

    labels = {"method": "GET", "route": "/test-unavailable/{part}"}
    async with running(app) as client:
        before = await scrape(client)
        for part in ("a", "b"):
            assert (await client.get(f"/test-unavailable/{part}")).status_code == 503
        assert (await client.get("/health")).status_code == 200
        after = await scrape(client)
    shed = "catalog_http_shed_total"
    assert value(after, shed, **labels) - value(before, shed, **labels) == 2
    assert total(after, shed) - total(before, shed) == 2  # the 200 is not shed
    server_errors = total(after, REQUESTS, status="5xx", **labels)
    assert server_errors - total(before, REQUESTS, status="5xx", **labels) == 2


async def test_pool_gauges_are_read_at_scrape_time_and_count_waiters(
    settings: Settings,
) -> None:
    # A pool of one connection, so that a second checkout has to wait.
    engine = create_async_engine(
        resolve_urls(settings.database_url).async_url,
        poolclass=WaitCountingPool,
        pool_size=1,
        max_overflow=0,
    )
    database = Database(engine)
    pool = engine.pool
    assert isinstance(pool, WaitCountingPool)
    try:
        async with running(metrics_app(settings, database)) as client:
            async with engine.connect():
                waiter = asyncio.create_task(_connect_once(database))

                async def queued() -> bool:
                    return pool.waiting > 0

                await eventually(queued, what="the second checkout queued for the pool")
                busy = await scrape(client)
            await asyncio.wait_for(waiter, 30)
            idle = await scrape(client)
    finally:
        await database.dispose()

    def gauges(samples: Samples) -> list[float]:
        names = ("size", "checked_out", "overflow", "waiting")
        return [value(samples, f"catalog_db_pool_{name}") for name in names]

    assert gauges(busy) == [1, 1, 0, 1]
    assert gauges(idle) == [1, 0, 0, 0]


async def _connect_once(database: Database) -> None:
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def test_412s_and_idempotent_replays_are_counted(
    settings: Settings, database: Database, make_user: MakeUser
) -> None:
    owner = await make_user("owner@example.com")
    item = {"name": "lamp", "price": 1}
    keyed = owner.headers | {"Idempotency-Key": "once"}
    async with running(metrics_app(settings, database)) as client:
        before = await scrape(client)
        created = await client.post("/items", json=item, headers=keyed)
        assert created.status_code == 201
        for _ in range(2):  # two retries, answered from the stored response
            replay = await client.post("/items", json=item, headers=keyed)
            assert replay.headers["idempotent-replayed"] == "true"
        url = f"/items/{created.json()['id']}"
        stale = owner.headers | {"If-Match": f'"{created.json()["id"]}.0"'}
        assert (await client.patch(url, json={"name": "x"}, headers=stale)).status_code == 412
        after = await scrape(client)
    replays = "catalog_idempotent_replays_total"
    assert total(after, replays) - total(before, replays) == 2
    refused = "catalog_http_precondition_failed_total"
    labels = {"method": "PATCH", "route": "/items/{item_id}"}
    assert value(after, refused, **labels) - value(before, refused, **labels) == 1


_FORKING_WORKER = """
import os
from catalog.telemetry import exposition

with exposition.multiprocess_directory() as directory:
    metrics = exposition.metrics()
    metrics.observe_request("GET", "/items", 200, 0.001)
    child = os.fork()
    if child == 0:  # a worker forked after the metrics were made, as a pre-fork server does
        metrics.observe_request("GET", "/items", 200, 0.001)
        metrics.observe_request("GET", "/items", 200, 0.001)
        os._exit(0)
    os.waitpid(child, 0)
    metrics.observe_request("GET", "/items", 200, 0.001)
    print(sorted(path.name for path in directory.glob("counter_*.db")))
    print(exposition.render().decode())
"""


def test_a_forked_worker_counts_in_files_of_its_own() -> None:
    """Multiprocess values keep a process id read from memory (not a system call per
    write): after a fork, the child must still write files of its own, or its writes
    and the parent's overwrite each other."""
    ran = subprocess.run(
        [sys.executable, "-c", _FORKING_WORKER],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
    )
    files, exposition_text = ran.stdout.split("\n", 1)
    assert len(ast.literal_eval(files)) == 2  # the parent's and the child's
    samples = parse_metrics(exposition_text)
    assert total(samples, "catalog_http_requests_total", route="/items") == 4
