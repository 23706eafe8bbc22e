"""Every program the harness starts works in a directory of its own, never in the caller's.

A clone under a mode-700 directory (root's home, `mktemp -d`) is a working directory the
`postgres` user, which runs the servers when we are root, cannot enter: HAProxy then refused
to start ("Impossible to get back to initial directory"). These start each kind of server from
such a directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from deploy.etcd import Etcd
from deploy.haproxy import Backend, HAProxy
from deploy.pgbouncer import PgBouncer
from deploy.ports import free_port
from deploy.postgres import PostgresInstance
from deploy.procs import Process, Service, private_dir, remove_dir, run

from tests.infra.fixtures import require_binaries, start_service


@pytest.fixture
def closed_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test runs in a directory only its owner may enter."""
    closed = tmp_path / "clone"
    closed.mkdir(mode=0o700)
    monkeypatch.chdir(closed)
    return closed


@pytest.fixture
def own_dir() -> Iterator[Path]:
    path = private_dir("procs-test")
    yield path
    remove_dir(path)


def test_a_process_works_in_the_dir_of_its_log(closed_cwd: Path, own_dir: Path) -> None:
    require_binaries("/bin/sleep")
    process = Process("sleep", ["/bin/sleep", "60"], own_dir / "sleep.log")
    process.start()
    try:
        assert Path(os.readlink(f"/proc/{process.pid}/cwd")) == own_dir
    finally:
        process.stop(timeout=5)


def test_a_command_runs_in_the_dir_it_is_given(closed_cwd: Path, own_dir: Path) -> None:
    require_binaries("/bin/pwd")
    assert run(["/bin/pwd"], cwd=own_dir, timeout=10).strip() == str(own_dir)


SERVERS: dict[str, Callable[[], Service]] = {
    "haproxy": lambda: HAProxy([Backend("node1", free_port(), free_port())]),
    "pgbouncer": lambda: PgBouncer(free_port()),
    "etcd": Etcd,
    "postgres": lambda: PostgresInstance("closed-cwd"),  # initdb, then the postmaster
}


@pytest.mark.parametrize("server", SERVERS)
def test_a_server_starts_from_a_directory_its_user_cannot_enter(
    closed_cwd: Path, server: str
) -> None:
    with ExitStack() as stack:
        started = start_service(SERVERS[server](), stack)
        assert started is not None
    assert Path.cwd() == closed_cwd
