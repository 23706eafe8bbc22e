"""TRACING=true alone (no OTEL_EXPORTER_OTLP_ENDPOINT) sends request spans; false sends none.

With TRACING the exporter keeps its own defaults, which OpenTelemetry's variables change:
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT points it at a collector stand-in on a loopback port.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from catalog.api.app import create_app
from catalog.db.database import Database
from tests.conftest import make_settings
from tests.telemetry import running
from tests.telemetry.test_tracing import Collector


@pytest.fixture
def traces_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """A collector that the exporter's defaults send to (not a Settings field)."""
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{server.endpoint}/v1/traces")
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.mark.parametrize("tracing", [True, False])
async def test_request_spans_are_exported_exactly_when_tracing_is_on(
    database_url: str, database: Database, traces_collector: Collector, tracing: bool
) -> None:
    settings = make_settings(database_url, tracing=tracing)
    assert settings.otel_exporter_otlp_endpoint is None  # TRACING alone decides
    app = create_app(settings, database)
    async with running(app) as client:
        assert (await client.get("/items")).status_code == 200
    # The lifespan's end flushed every queued span: nothing more is coming.
    assert ("GET /items" in traces_collector.span_names) is tracing, traces_collector.span_names
