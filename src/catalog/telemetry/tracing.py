"""OpenTelemetry traces: a span per request (FastAPI's own) and one per SQL statement.

Off unless TRACING=true or OTEL_EXPORTER_OTLP_ENDPOINT is set. FastAPI (0.165+) traces
requests itself given a tracer provider: a server span named `{method} {route template}`
and spans for dependency resolution, the endpoint and serialization. Statements come
from the database layer's one hook (`db.observe.statement_executed`), which sees the raw
asyncpg path too, and become child spans of whatever span is current.

The provider is made with the app; its exporter (OTLP over HTTP, with a batching thread)
is only added in the lifespan (`start`), i.e. in each worker after it was forked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi.telemetry import TelemetryConfig

from catalog.config import Settings
from catalog.db.observe import statement_executed

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

# OpenTelemetry's SDK is imported only when tracing is on: ~8 MiB of every worker otherwise.

DEFAULT_SERVICE_NAME = "catalog"


def tracer_provider(settings: Settings) -> TracerProvider | None:
    """A provider for this app when tracing is on (no exporter yet: see `start`)."""
    if not settings.tracing_enabled:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    name = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    return TracerProvider(resource=Resource.create({SERVICE_NAME: name}), shutdown_on_exit=False)


def fastapi_telemetry(provider: TracerProvider | None) -> TelemetryConfig:
    """FastAPI's telemetry settings: request spans from our provider, nothing else.

    Explicit either way, so that a global OpenTelemetry set-up by some other library
    never switches FastAPI's instrumentation on behind the settings' back.
    """
    config: TelemetryConfig = {"metrics": False, "logs": False, "auto_configure": False}
    if provider is None:
        return config | {"tracing": False, "operation_spans": False}
    return config | {"tracer_provider": provider}


def traces_endpoint(base: str | None) -> str | None:
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: traces go to its /v1/traces."""
    return f"{base.rstrip('/')}/v1/traces" if base else None


def start(provider: TracerProvider, settings: Settings) -> Callable[[], None]:
    """Export spans and trace statements from now on; returns the function that stops."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = traces_endpoint(settings.otel_exporter_otlp_endpoint)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    unsubscribe = statement_executed.subscribe(StatementSpans(provider.get_tracer("catalog.db")))

    def stop() -> None:
        unsubscribe()
        provider.shutdown()  # flushes the spans still queued

    return stop


class StatementSpans:
    """Subscriber of `statement_executed`: one client span per statement, after the fact."""

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.tracer = tracer
        self._client = SpanKind.CLIENT
        self._failed = Status(StatusCode.ERROR)

    def __call__(
        self, backend: str, sql: str, started: int, ended: int, error: BaseException | None
    ) -> None:
        # The hook's times are monotonic; spans want wall-clock nanoseconds.
        end_time = time.time_ns() - (time.perf_counter_ns() - ended)
        attributes: dict[str, Any] = {"db.system.name": backend, "db.query.text": sql}
        if error is not None:
            # The type only: driver messages can quote the values of the row.
            attributes["error.type"] = type(error).__qualname__
        span = self.tracer.start_span(
            _operation(sql),
            kind=self._client,
            attributes=attributes,
            start_time=end_time - (ended - started),
        )
        if error is not None:
            span.set_status(self._failed)
        span.end(end_time=end_time)


def _operation(sql: str) -> str:
    """The span name: the statement's first keyword (SELECT, INSERT, WITH...)."""
    head = sql.lstrip().split(None, 1)
    return head[0].upper() if head else "SQL"
