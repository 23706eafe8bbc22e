"""`catalog serve` started by the tests (tests/served.py, the fault suite's CatalogService)
on a port from deploy/ports.py, which another process may take before uvicorn binds it:
the start is retried on another port, as for PostgreSQL and PgBouncer (test_ports.py).

Here the port is provably taken: the test itself listens on the first port handed out.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from deploy.procs import ADDRESS_IN_USE, PortInUseError

from tests import served as served_module
from tests.conftest import sqlite_only
from tests.faults import harness
from tests.faults.harness import CatalogService, running_service
from tests.infra.fixtures import handing_out_first
from tests.served import served_catalog

# The subject is the ports, not the database.
pytestmark = sqlite_only


def test_served_catalog_starts_on_another_port_when_its_port_was_taken(
    taken_port: int, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served_module, "free_port", handing_out_first(taken_port))
    with served_catalog(database_url, tmp_path) as base_url:
        assert not base_url.endswith(f":{taken_port}")
        assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200
    assert ADDRESS_IN_USE.search((tmp_path / "serve.log").read_text())  # the first start's


def test_the_fault_suites_service_starts_on_another_port_when_its_port_was_taken(
    taken_port: int, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "free_port", handing_out_first(taken_port))
    with running_service(database_url) as service:
        assert service.port != taken_port
        assert httpx.get(f"{service.url}/health", timeout=10).status_code == 200
        assert ADDRESS_IN_USE.search(service.log())  # the first start's


def test_a_service_port_given_by_the_caller_is_not_changed(
    taken_port: int, database_url: str
) -> None:
    """The caller asked for that port (a restart on the same one): failing is right,
    silently moving is not."""
    service = CatalogService(database_url, port=taken_port)
    try:
        with pytest.raises(PortInUseError, match="in use"):
            service.start()
    finally:
        service.close()
