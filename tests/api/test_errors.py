"""Cross-cutting HTTP behaviour: request ids, error bodies, 500s, 401 challenges, probes."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from catalog.api.app import create_app
from catalog.config import Settings
from catalog.db.database import Database
from catalog.logs import RequestIdFilter
from tests.api import login
from tests.conftest import Account, make_settings

WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
INTERNAL_ERROR = {"detail": "Internal Server Error"}


def _asgi_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


# --- X-Request-ID ----------------------------------------------------------------------

REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/health", {}, 200),
    ("GET", "/health/ready", {}, 200),
    ("GET", "/no-such-path", {}, 404),
    ("DELETE", "/health", {}, 405),
    ("GET", "/items/12345", {}, 404),
    ("GET", "/users/me", {}, 401),
    ("POST", "/users", {"json": {"email": "bad"}}, 422),
    ("POST", "/users", {"json": {"email": "a@example.com", "password": "password123"}}, 201),
    ("POST", "/auth/token", {"data": {"username": "a@example.com", "password": "nope"}}, 401),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    REQUESTS,
    ids=[f"{m}-{p}-{s}" for m, p, _, s in REQUESTS],
)
async def test_every_response_carries_a_request_id(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    first = await client.request(method, path, **kwargs)
    second = await client.request(method, path, **kwargs)

    assert first.status_code == status
    ids = [first.headers.get("X-Request-ID"), second.headers.get("X-Request-ID")]
    assert all(i is not None and WELL_FORMED_ID.fullmatch(i) for i in ids), ids
    assert ids[0] != ids[1]


async def test_forbidden_and_no_content_responses_carry_a_request_id(
    client: httpx.AsyncClient, user: Account, superuser: Account
) -> None:
    forbidden = await client.get("/users", headers=user.headers)
    deleted = await client.delete(f"/users/{user.id}", headers=superuser.headers)

    assert (forbidden.status_code, deleted.status_code) == (403, 204)
    assert "X-Request-ID" in forbidden.headers
    assert "X-Request-ID" in deleted.headers
    assert deleted.content == b""


@pytest.mark.parametrize(
    "incoming",
    ["abc123", "req-2024.01:alpha_beta", "3f2b1c9e-8d7a-4e6f-9b0c-1a2d3e4f5a6b", "x" * 128],
)
async def test_a_well_formed_request_id_is_echoed(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] == incoming


async def test_a_request_id_is_echoed_on_errors_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me", headers={"X-Request-ID": "trace-401"})

    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "trace-401"


@pytest.mark.parametrize(
    "incoming",
    ["x" * 300, "x" * 129, "has spaces", "semi;colon", "new\tline", "ünïcode", ""],
    ids=["300-chars", "129-chars", "spaces", "semicolon", "tab", "non-ascii", "empty"],
)
async def test_a_malformed_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/health", headers={b"X-Request-ID": incoming.encode()})

    assert response.status_code == 200
    [outgoing] = response.headers.get_list("X-Request-ID")
    assert outgoing != incoming
    assert WELL_FORMED_ID.fullmatch(outgoing)


# --- error bodies -----------------------------------------------------------------------


async def test_errors_are_json_with_a_detail(client: httpx.AsyncClient) -> None:
    not_found = await client.get("/no-such-path")
    not_allowed = await client.delete("/health")
    invalid = await client.post("/users", json={"email": "bad", "password": "password123"})

    assert not_found.json() == {"detail": "Not Found"}
    assert not_allowed.json() == {"detail": "Method Not Allowed"}
    for response in (not_found, not_allowed, invalid):
        assert response.headers["content-type"].startswith("application/json")
    # 422 keeps FastAPI's validation list, naming the offending field.
    [error] = invalid.json()["detail"]
    assert error["loc"] == ["body", "email"]
    assert {"loc", "msg", "type"} <= set(error)


# --- unexpected exceptions --------------------------------------------------------------


@pytest.fixture
def boom_app(settings: Settings, database: Database) -> FastAPI:
    """The real app plus one route that fails the way a bug would."""
    app = create_app(settings, database)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom: secret internals")

    return app


@pytest.fixture
def catalog_log(boom_app: FastAPI) -> Iterator[io.StringIO]:
    """What the app's own log handler writes (the 'catalog' logger does not propagate)."""
    logger = logging.getLogger("catalog")
    [handler] = [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler)
        and any(isinstance(f, RequestIdFilter) for f in h.filters)
    ]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    if previous is not None:
        handler.setStream(previous)


async def test_an_unexpected_error_is_a_generic_500_logged_with_the_request_id(
    boom_app: FastAPI, catalog_log: io.StringIO
) -> None:
    async with _asgi_client(boom_app) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "trace-500"})

    assert response.status_code == 500
    assert response.json() == INTERNAL_ERROR
    assert "secret internals" not in response.text
    assert response.headers["X-Request-ID"] == "trace-500"
    log = catalog_log.getvalue()
    lines = [line for line in log.splitlines() if "[trace-500]" in line]
    # The error, and the request's access line (status 500): both with the request's id.
    [line] = [line for line in lines if " catalog.api " in line]
    [access] = [line for line in lines if " catalog.access " in line]
    assert "GET /boom 500" in access
    assert "ERROR" in line
    assert "/boom" in line
    assert "RuntimeError: kaboom: secret internals" in log  # the traceback is in the log


async def test_a_500_without_an_incoming_id_logs_the_minted_one(
    boom_app: FastAPI, catalog_log: io.StringIO
) -> None:
    async with _asgi_client(boom_app) as client:
        response = await client.get("/boom")

    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    assert f"[{request_id}]" in catalog_log.getvalue()


async def test_the_app_keeps_serving_after_a_500(boom_app: FastAPI) -> None:
    async with _asgi_client(boom_app) as client:
        assert (await client.get("/boom")).status_code == 500
        assert (await client.get("/health/ready")).status_code == 200


# --- 401 challenges ---------------------------------------------------------------------

PROTECTED: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/users/me", {}),
    ("PATCH", "/users/me", {"json": {"full_name": "x"}}),
    ("GET", "/users", {}),
    ("GET", "/users/1", {}),
    ("PATCH", "/users/1", {"json": {"full_name": "x"}}),
    ("DELETE", "/users/1", {}),
    ("POST", "/items", {"json": {"name": "x", "price": 1}}),
    ("PUT", "/items/1", {"json": {"name": "x"}}),
    ("PATCH", "/items/1", {"json": {"name": "x"}}),
    ("DELETE", "/items/1", {}),
    ("POST", "/tags", {"json": {"name": "x"}}),
    ("DELETE", "/tags/x", {}),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"), PROTECTED, ids=[f"{m}-{p}" for m, p, _ in PROTECTED]
)
async def test_401_carries_a_bearer_challenge(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = await client.request(method, path, **kwargs)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert isinstance(response.json()["detail"], str)


async def test_a_failed_login_carries_a_bearer_challenge(
    client: httpx.AsyncClient, user: Account
) -> None:
    response = await login(client, user.email, "wrong-password")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_403_is_not_a_challenge(client: httpx.AsyncClient, user: Account) -> None:
    response = await client.get("/users", headers=user.headers)

    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers


# --- unknown query parameters -----------------------------------------------------------


async def test_unknown_query_parameters_are_ignored(
    client: httpx.AsyncClient, make_user: Any, superuser: Account
) -> None:
    for _ in range(3):
        await make_user()

    plain = await client.get("/users", params={"skip": 1}, headers=superuser.headers)
    extra = await client.get(
        "/users", params={"skip": 1, "sort": "email", "q": "x"}, headers=superuser.headers
    )
    me = await client.get("/users/me", params={"debug": "true"}, headers=superuser.headers)
    health = await client.get("/health", params={"verbose": "1"})

    assert extra.status_code == 200
    assert extra.json() == plain.json()
    assert len(extra.json()) == 3
    assert me.status_code == 200
    assert health.status_code == 200


async def test_unknown_query_parameters_do_not_affect_writes(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users",
        params={"is_superuser": "true"},
        json={"email": "a@example.com", "password": "password123"},
    )

    assert response.status_code == 201
    assert response.json()["is_superuser"] is False


# --- health probes ----------------------------------------------------------------------


async def test_health_does_not_need_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture(
    params=[
        "postgresql://nobody@127.0.0.1:1/x",  # nothing listens on port 1: refused at once
        "sqlite:////nonexistent-directory/catalog/catalog.db",  # cannot be opened
    ],
    ids=["postgresql-refused", "sqlite-unopenable"],
)
async def unreachable_app(request: pytest.FixtureRequest) -> AsyncIterator[FastAPI]:
    """An app whose database does not answer."""
    settings = make_settings(request.param)
    database = Database.from_settings(settings)
    yield create_app(settings, database)
    await database.dispose()


async def test_ready_is_503_when_the_database_does_not_answer(
    unreachable_app: FastAPI,
) -> None:
    async with _asgi_client(unreachable_app) as client:
        ready = await client.get("/health/ready")
        alive = await client.get("/health")

    assert ready.status_code == 503
    assert isinstance(ready.json()["detail"], str)
    assert "X-Request-ID" in ready.headers
    assert alive.status_code == 200  # liveness does not depend on the database
