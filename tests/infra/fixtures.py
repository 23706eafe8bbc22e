"""Fixtures over deploy/: private PostgreSQL servers, replicas, PgBouncer, a Patroni cluster.

Registered for the whole suite by `pytest_plugins` in tests/conftest.py. Each fixture starts
real processes on free loopback ports and removes them afterwards. When a program is not
installed (`make infra` installs them) the test is skipped with the reason; with CI=true it
fails instead.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any, NoReturn, TypeVar

import pytest
from deploy.patroni import PatroniCluster
from deploy.pgbouncer import PgBouncer, PoolMode
from deploy.ports import HOST, free_port
from deploy.postgres import PostgresInstance
from deploy.procs import MissingBinaryError, Service, find_binary

from tests.conftest import IN_CI

MakePostgres = Callable[..., PostgresInstance]
MakeReplica = Callable[..., PostgresInstance]
MakePgBouncer = Callable[..., PgBouncer]


S = TypeVar("S", bound=Service)


def missing_infrastructure(error: MissingBinaryError) -> NoReturn:
    """Skip the test for a missing program, or fail it on CI, which must have everything."""
    if IN_CI:
        pytest.fail(f"CI requires the real infrastructure: {error}", pytrace=False)
    pytest.skip(str(error))


def require_binaries(*paths: str) -> None:
    """Skip (fail on CI) unless every program in `paths` is installed."""
    try:
        for path in paths:
            find_binary(path)
    except MissingBinaryError as error:
        missing_infrastructure(error)


def start_service(service: S, stack: ExitStack) -> S:
    """Start `service` with its close() on `stack`; a missing program skips (fails on CI)."""
    stack.callback(service.close)
    try:
        service.start()
    except MissingBinaryError as error:
        missing_infrastructure(error)
    return service


@pytest.fixture
def postgres_factory() -> Iterator[MakePostgres]:
    """Factory: `make(name="pg", settings=None)` starts another private PostgreSQL server."""
    with ExitStack() as stack:
        yield lambda name="pg", **kwargs: start_service(PostgresInstance(name, **kwargs), stack)


@pytest.fixture
def private_postgres(postgres_factory: MakePostgres) -> PostgresInstance:
    """A private PostgreSQL 15 server of this test's own, on a free port."""
    return postgres_factory("primary")


@pytest.fixture
def make_replica(private_postgres: PostgresInstance) -> MakeReplica:
    """Factory: `make(delay=0.0)` adds a streaming replica of `private_postgres`.

    With `delay` seconds, commits are applied that long after they happened on the primary.
    """
    return private_postgres.add_replica


@pytest.fixture
def replica(make_replica: MakeReplica) -> PostgresInstance:
    """A streaming replica (no delay) of `private_postgres`."""
    return make_replica()


@pytest.fixture
def pgbouncer(request: pytest.FixtureRequest) -> Iterator[MakePgBouncer]:
    """Factory: `make(mode="transaction", upstream_port=None, **options)` starts a PgBouncer.

    The upstream defaults to `private_postgres`; `options` go to `PgBouncer(...)`.
    """
    with ExitStack() as stack:

        def make(
            mode: PoolMode = "transaction", *, upstream_port: int | None = None, **options: Any
        ) -> PgBouncer:
            if upstream_port is None:
                upstream_port = request.getfixturevalue("private_postgres").port
            return start_service(PgBouncer(upstream_port, pool_mode=mode, **options), stack)

        yield make


@pytest.fixture(scope="session")
def _patroni_cluster_session() -> Iterator[PatroniCluster]:
    with ExitStack() as stack:
        yield start_service(PatroniCluster(), stack)


@pytest.fixture
def patroni_cluster(_patroni_cluster_session: PatroniCluster) -> PatroniCluster:
    """etcd + 3 Patroni nodes + HAProxy, shared by the session, healthy when handed over.

    Starting one takes about 10 s, so tests share it; each gets it back with a leader, a
    synchronous standby and every member streaming (after whatever the last test did to it).
    """
    _patroni_cluster_session.wait_healthy(timeout=120)
    return _patroni_cluster_session


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something already listens on."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


def handing_out_first(port: int) -> Callable[[], int]:
    """A `free_port` that hands out `port` first (as a racing process would leave it)."""
    ports = iter([port])
    return lambda: next(ports, None) or free_port()
