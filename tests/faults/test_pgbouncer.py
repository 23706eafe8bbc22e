"""Behind a real PgBouncer, in session and in transaction mode: migrate, tune, serve.

(`make test-pgbouncer` runs the PostgreSQL half of the HTTP suite through one as well.)
"""

from __future__ import annotations

import httpx
import pytest
from deploy.pgbouncer import PgBouncer
from deploy.postgres import PostgresInstance

from tests.faults.harness import catalog_command, running_service
from tests.infra.fixtures import MakePgBouncer

pytestmark = pytest.mark.slow


async def _exercise(base_url: str) -> None:
    """Register, log in, write with tags, read, list, a conditional and an idempotent write."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        account = {"email": "pooled@example.com", "password": "pooled-pass-1"}
        assert (await client.post("/users", json=account)).status_code == 201
        form = {"username": account["email"], "password": account["password"]}
        token = (await client.post("/auth/token", data=form)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for round_ in range(3):  # again and again: statements reach other server connections
            created = await client.post(
                "/items",
                json={"name": f"lamp{round_}", "price": 3, "tags": ["a", "b"]},
                headers=headers | {"Idempotency-Key": f"k{round_}"},
            )
            assert created.status_code == 201, created.text
            item = f"/items/{created.json()['id']}"
            read = await client.get(item)
            assert read.json()["tags"] == ["a", "b"]
            patched = await client.patch(
                item, json={"tags": ["c"]}, headers=headers | {"If-Match": read.headers["etag"]}
            )
            assert patched.status_code == 200, patched.text
            page = await client.get("/items", params={"tag": "c", "limit": 1})
            assert page.status_code == 200
        replay = await client.post(
            "/items",
            json={"name": "lamp0", "price": 3, "tags": ["a", "b"]},
            headers=headers | {"Idempotency-Key": "k0"},
        )
        assert replay.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize("mode", ["session", "transaction"])
async def test_migrate_tune_and_serve_through_pgbouncer(
    private_postgres: PostgresInstance, pgbouncer: MakePgBouncer, mode: str
) -> None:
    private_postgres.create_database("catalog")
    bouncer: PgBouncer = pgbouncer(mode)
    url = bouncer.url("catalog")

    for command in (("db", "upgrade"), ("db", "tune"), ("db", "check")):
        done = catalog_command(url, *command, pooler=mode)
        assert done.returncode == 0, done.stderr
    assert private_postgres.scalar("SHOW jit", database="catalog") == "off"  # from `tune`

    with running_service(url, DATABASE_POOLER=mode) as service:
        await _exercise(service.url)


async def test_without_the_pooler_setting_pgbouncer_refuses_the_service(
    private_postgres: PostgresInstance, pgbouncer: MakePgBouncer
) -> None:
    """What DATABASE_POOLER is for: PgBouncer refuses the startup parameters the service
    sends directly to PostgreSQL. The service says so with 503s, not 500s."""
    private_postgres.create_database("catalog")
    url = pgbouncer("transaction").url("catalog")
    assert catalog_command(url, "db", "upgrade", pooler="transaction").returncode == 0
    with running_service(url, DATABASE_POOLER="none") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            refused = await client.get("/items")
    assert refused.status_code == 503
