"""The metric families, and the code that feeds them from requests, statements and logins.

One `Metrics` per process (`exposition.metrics()`), created on first use: in multiprocess
mode (`PROMETHEUS_MULTIPROC_DIR` set, see `exposition`) every value lives in that
directory's files and the families are registered nowhere; otherwise in
`exposition.LOCAL_REGISTRY`.

The request path is kept cheap: the label children of each (method, route, status) are
looked up once and cached, histograms have few buckets, nothing is formatted, and the
live gauges (requests in flight, pools) are plain numbers read when scraped, or copied
into the shared files once a second in multiprocess mode, not written per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from catalog.db.observe import WaitCountingPool

UNMATCHED: Final = "unmatched"  # the route label of requests no route matched
OTHER_METHOD: Final = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES = {code: f"{code // 100}xx" for code in range(100, 600)}
SHED_STATUS: Final = 503
# Latency buckets in seconds: few, spread over what an API request and a statement take.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
STATEMENT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)
LIVE_SAMPLE_INTERVAL_S = 1.0
LIVE_HELP = {
    "catalog_http_requests_in_flight": "Requests being served now.",
    "catalog_db_pool_size": "Connections the database pools keep (DB_POOL_SIZE per worker).",
    "catalog_db_pool_checked_out": "Pooled database connections in use now.",
    "catalog_db_pool_overflow": "Connections open beyond the pool size (DB_MAX_OVERFLOW).",
    "catalog_db_pool_waiting": "Requests waiting for a database connection now.",
}
Children = tuple[Counter, Histogram, Counter | None]


class Metrics(Collector):
    """Every metric family of the service, and the cached label children of the hot path."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ("method", "route", "status")
        self.requests = Counter(
            "catalog_http_requests",
            "HTTP requests answered, by method, route template and status class.",
            labels,
            registry=registry,
        )
        self.duration = Histogram(
            "catalog_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            labels,
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.shed = Counter(
            "catalog_http_shed",
            "Requests answered 503 Service Unavailable (database unavailable or overloaded).",
            ("method", "route"),
            registry=registry,
        )
        self.precondition_failed = Counter(
            "catalog_http_precondition_failed",
            "Writes answered 412: the resource changed since the ETag given in If-Match.",
            ("method", "route"),
            registry=registry,
        )
        self.idempotent_replays = Counter(
            "catalog_idempotent_replays",
            "POSTs answered with the stored response of an earlier request with the same "
            "Idempotency-Key (a retry that wrote nothing).",
            registry=registry,
        )
        self.login_failures = Counter(
            "catalog_login_failures",
            "Refused logins: invalid_credentials (unknown email or wrong password) or inactive.",
            ("reason",),
            registry=registry,
        )
        self.lsn_ignored = Counter(
            "catalog_lsn_ignored",
            "X-Catalog-LSN values beyond the primary's WAL position (forged), ignored.",
            registry=registry,
        )
        self.statement_duration = Histogram(
            "catalog_db_statement_duration_seconds",
            "Time the database took for one statement, both execution paths, by outcome.",
            ("outcome",),
            buckets=STATEMENT_BUCKETS,
            registry=registry,
        )
        self._statement_ok = self.statement_duration.labels("ok")
        self._statement_error = self.statement_duration.labels("error")
        self._children: dict[tuple[str, str, int], Children] = {}
        # Live values of this process.
        self.in_flight = 0
        self.pools: list[WaitCountingPool] = []
        self._sampled = {
            name: Gauge(name, help_text, registry=None, multiprocess_mode="livesum")
            for name, help_text in LIVE_HELP.items()
        }
        if registry is not None:
            registry.register(self)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (the hot path: one dict lookup when warm)."""
        if method not in _METHODS:
            method = OTHER_METHOD  # the method comes from the client: keep labels bounded
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._make_children(method, route, status)
        counter, histogram, by_status = children
        counter.inc()
        histogram.observe(seconds)
        if by_status is not None:
            by_status.inc()

    def _make_children(self, method: str, route: str, status: int) -> Children:
        status_class = _STATUS_CLASSES.get(status, "other")
        # Counters of one status, by route: a new one goes here, like these two.
        by_status = {SHED_STATUS: self.shed, 412: self.precondition_failed}.get(status)
        return (
            self.requests.labels(method, route, status_class),
            self.duration.labels(method, route, status_class),
            by_status.labels(method, route) if by_status is not None else None,
        )

    def observe_statement(
        self, backend: str, sql: str, started: int, ended: int, error: BaseException | None
    ) -> None:
        """Subscriber of `db.observe.statement_executed`."""
        child = self._statement_ok if error is None else self._statement_error
        child.observe((ended - started) / 1e9)

    def observe_login_failure(self, reason: str) -> None:
        """Subscriber of `hooks.login_failed`."""
        self.login_failures.labels(reason).inc()

    def observe_lsn_ignored(self) -> None:
        """Count one forged consistency token."""
        self.lsn_ignored.inc()

    def observe_replay(self) -> None:
        """Subscriber of `hooks.idempotent_replayed`."""
        self.idempotent_replays.inc()

    def live_values(self) -> Iterator[tuple[str, float]]:
        """(gauge name, value) of the live gauges of this process, now."""
        pools = list(self.pools)
        yield "catalog_http_requests_in_flight", self.in_flight
        yield "catalog_db_pool_size", sum(pool.size() for pool in pools)
        yield "catalog_db_pool_checked_out", sum(pool.checkedout() for pool in pools)
        # QueuePool counts overflow from -size (connections not yet opened): the excess only.
        yield "catalog_db_pool_overflow", sum(max(pool.overflow(), 0) for pool in pools)
        yield "catalog_db_pool_waiting", sum(pool.waiting for pool in pools)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The live gauges, read at scrape time (one process: registered as a collector)."""
        for name, value in self.live_values():
            yield GaugeMetricFamily(name, LIVE_HELP[name], value=value)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self.collect()

    async def sample_live_values(self) -> None:
        """Multiprocess mode: copy the live values into the shared gauges every second."""
        while True:
            for name, value in self.live_values():
                self._sampled[name].set(value)
            await asyncio.sleep(LIVE_SAMPLE_INTERVAL_S)
