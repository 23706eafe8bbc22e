"""Ports handed out by deploy/ports.py can be taken before the server binds them: the
start is retried on another port (issue 19, item 6).

`free_port()` binds port 0, closes the socket and hands the number out; another process
(a parallel test run, another helper's server) may get the same number from the kernel
before our server listens on it. Here the port is provably taken: the test itself
listens on the first port handed out.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from deploy import pgbouncer as pgbouncer_module
from deploy import postgres as postgres_module
from deploy.pgbouncer import PgBouncer
from deploy.ports import is_listening
from deploy.postgres import PostgresInstance
from deploy.procs import PortInUseError, start_retrying_taken_ports

from tests.infra.fixtures import handing_out_first, start_service


def test_postgres_starts_on_another_port_when_its_port_was_taken(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_module, "free_port", handing_out_first(taken_port))
    with ExitStack() as stack:
        server = start_service(PostgresInstance("taken-port"), stack)
        assert server.port != taken_port
        assert server.scalar("SELECT 1") == 1
        assert is_listening(server.port)


def test_pgbouncer_starts_on_another_port_when_its_port_was_taken(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExitStack() as stack:
        server = start_service(PostgresInstance("behind-pgbouncer"), stack)
        monkeypatch.setattr(pgbouncer_module, "free_port", handing_out_first(taken_port))
        bouncer = start_service(PgBouncer(server.port, pool_mode="transaction"), stack)
        assert bouncer.port != taken_port
        assert f"listen_port = {bouncer.port}" in bouncer.config_text()
        assert is_listening(bouncer.port)


def test_a_port_given_by_the_caller_is_not_changed(taken_port: int) -> None:
    """The caller asked for that port: failing is right, silently moving is not."""
    with ExitStack() as stack, pytest.raises(PortInUseError, match="in use"):
        start_service(PostgresInstance("fixed-port", port=taken_port), stack)


def test_retries_are_bounded_and_other_errors_are_not_retried() -> None:
    starts: list[int] = []

    def always_taken() -> None:
        starts.append(1)
        raise PortInUseError("address already in use")

    with pytest.raises(PortInUseError):
        start_retrying_taken_ports(always_taken, lambda: None, attempts=3)
    assert len(starts) == 3

    def broken() -> None:
        starts.append(2)
        raise RuntimeError("bad config")

    with pytest.raises(RuntimeError, match="bad config"):
        start_retrying_taken_ports(broken, lambda: None)
    assert starts.count(2) == 1
