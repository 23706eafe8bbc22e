"""OpenTelemetry traces: the span tree of one request, and its export over OTLP/HTTP.

The exporter sends to a collector stand-in on a loopback port (no network).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from catalog.api.app import create_app
from catalog.config import Settings
from catalog.db.database import Database
from catalog.db.observe import statement_executed
from tests.conftest import MakeUser, make_settings
from tests.telemetry import running


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps the span names of every export it gets."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.span_names: list[str] = []
        self.paths: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        self.server.paths.append(self.path)
        self.server.span_names += [
            span.name
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names of the span's parents, nearest first."""
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_request_is_a_span_tree_down_to_each_statement(
    settings: Settings,
    database: Database,
    backend: str,
    make_user: MakeUser,
    collector: Collector,
) -> None:
    owner = await make_user()
    traced = make_settings(settings.database_url, otel_exporter_otlp_endpoint=collector.endpoint)
    app = create_app(traced, database)
    memory = InMemorySpanExporter()
    async with running(app) as client:
        app.state.tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
        item = await client.post("/items", json={"name": "lamp", "price": 2}, headers=owner.headers)
        memory.clear()
        caller = "4bf92f3577b34da6a3ce929d0e0e4736"  # W3C trace context from a caller
        headers = {"traceparent": f"00-{caller}-00f067aa0ba902b7-01"}
        assert (await client.get(f"/items/{item.json()['id']}", headers=headers)).status_code == 200
        spans = memory.get_finished_spans()
    assert not statement_executed  # the lifespan's end unsubscribed the statement spans

    by_id = {span.context.span_id: span for span in spans}
    [server] = [span for span in spans if span.kind == SpanKind.SERVER]
    assert server.name == "GET /items/{item_id}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/items/{item_id}"
    [statement] = [span for span in spans if span.kind == SpanKind.CLIENT]
    # On PostgreSQL this statement ran on the raw asyncpg connection.
    assert statement.name == "SELECT"
    assert statement.attributes is not None
    assert statement.attributes["db.system.name"] == backend
    assert "FROM items" in str(statement.attributes["db.query.text"])
    assert {span.context.trace_id for span in spans} == {int(caller, 16)}  # the caller's trace
    assert ancestors(statement, by_id)[-1] == server.name  # a descendant of the request
    assert server.start_time is not None
    assert statement.start_time is not None
    assert server.start_time <= statement.start_time
    assert statement.end_time is not None
    assert server.end_time is not None
    assert statement.end_time <= server.end_time
    # The lifespan's end flushed the batch to the OTLP endpoint's /v1/traces.
    assert set(collector.paths) == {"/v1/traces"}
    assert {"POST /items", "GET /items/{item_id}", "SELECT"} <= set(collector.span_names)


def test_tracing_is_off_by_default(settings: Settings, database: Database) -> None:
    assert not settings.tracing_enabled
    assert create_app(settings, database).state.tracer_provider is None
