"""The metric families, and the code that feeds them from requests, statements and logins.

One `Metrics` per process (`metrics()`), created on first use: in multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR` set, see `exposition`) every value lives in that directory's
files and the families are registered nowhere; otherwise in `exposition.LOCAL_REGISTRY`.

The request path is kept cheap: the label children of each (method, route, status) are
looked up once and cached, histograms have few buckets, and nothing is formatted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
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
POOL_SAMPLE_INTERVAL_S = 1.0


class Metrics:
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
        self.in_flight = Gauge(
            "catalog_http_requests_in_flight",
            "Requests being served now (all workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            "catalog_http_shed",
            "Requests answered 503 Service Unavailable (the database unavailable or overloaded).",
            ("method", "route"),
            registry=registry,
        )
        self.login_failures = Counter(
            "catalog_login_failures",
            "Refused logins: invalid_credentials (unknown email or wrong password) or inactive.",
            ("reason",),
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
        # Sampled pool gauges: only in multiprocess mode (one process cannot read another's
        # pool at scrape time); a single process uses `PoolCollector` instead.
        self.pool_gauges = {
            name: Gauge(
                f"catalog_db_pool_{name}",
                help_text,
                registry=None,
                multiprocess_mode="livesum",
            )
            for name, help_text in POOL_HELP.items()
        }
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (the hot path: one dict lookup when warm)."""
        if method not in _METHODS:
            method = OTHER_METHOD  # the method comes from the client: keep labels bounded
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._make_children(method, route, status)
        counter, histogram, shed = children
        counter.inc()
        histogram.observe(seconds)
        if shed is not None:
            shed.inc()

    def _make_children(
        self, method: str, route: str, status: int
    ) -> tuple[Counter, Histogram, Counter | None]:
        status_class = _STATUS_CLASSES.get(status, "other")
        shed = self.shed.labels(method, route) if status == SHED_STATUS else None
        return (
            self.requests.labels(method, route, status_class),
            self.duration.labels(method, route, status_class),
            shed,
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

    async def sample_pools(self, pools: Callable[[], list[WaitCountingPool]]) -> None:
        """Copy the pools' state into the gauges every second, until cancelled."""
        while True:
            for name, value in pool_state(pools()):
                self.pool_gauges[name].set(value)
            await asyncio.sleep(POOL_SAMPLE_INTERVAL_S)


POOL_HELP = {
    "size": "Connections the database pools keep (DB_POOL_SIZE per worker).",
    "checked_out": "Pooled connections in use by requests now.",
    "overflow": "Connections open beyond the pool size now (at most DB_MAX_OVERFLOW per worker).",
    "waiting": "Requests waiting for a database connection now (pool exhausted or connecting).",
}


def pool_state(pools: list[WaitCountingPool]) -> Iterator[tuple[str, float]]:
    """(gauge name, value) for the pools, summed."""
    yield "size", sum(pool.size() for pool in pools)
    yield "checked_out", sum(pool.checkedout() for pool in pools)
    # QueuePool counts overflow from -size (connections not yet opened): only the excess.
    yield "overflow", sum(max(pool.overflow(), 0) for pool in pools)
    yield "waiting", sum(pool.waiting for pool in pools)


class PoolCollector(Collector):
    """The pool gauges of one process, read from the pools at scrape time."""

    def __init__(self) -> None:
        self.pools: list[WaitCountingPool] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, value in pool_state(list(self.pools)):
            yield GaugeMetricFamily(f"catalog_db_pool_{name}", POOL_HELP[name], value=value)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self.collect()
