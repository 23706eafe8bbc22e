"""Collecting and serving the metrics: one process, or every worker of `catalog serve`.

With several worker processes, prometheus-client's multiprocess mode keeps every value in
memory-mapped files under `PROMETHEUS_MULTIPROC_DIR`, one set per process, and a scrape
adds them up (`MultiProcessCollector`). `catalog serve` creates that directory fresh for
each run and removes it at exit (`multiprocess_directory`). Counters and histograms of
dead workers keep counting in the totals; the "live" gauges (in flight, pools) of a
worker that exits are dropped: by the worker itself on a clean exit, and at the next
scrape for one that died (`ReapingCollector`).

Without that variable (tests, a plain `uvicorn` with one worker) values live in the
process, in `LOCAL_REGISTRY`.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from catalog.telemetry.metrics import Metrics, PoolCollector

ENV = "PROMETHEUS_MULTIPROC_DIR"
LOCAL_REGISTRY = CollectorRegistry()
POOLS = PoolCollector()  # the pools of this process, read at scrape time
LOCAL_REGISTRY.register(POOLS)
_LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db$")
logger = logging.getLogger("catalog.metrics")


def multiprocess_dir() -> str | None:
    """The multiprocess directory, when this process shares its metrics with others."""
    return os.environ.get(ENV) or None


@lru_cache(maxsize=1)
def metrics() -> Metrics:
    """This process's metric families (created on first use, in the current mode)."""
    return Metrics(None if multiprocess_dir() else LOCAL_REGISTRY)


class ReapingCollector(MultiProcessCollector):
    """MultiProcessCollector that first drops the live gauges of processes that are gone."""

    def collect(self) -> Iterable[Metric]:
        for path in glob.glob(os.path.join(self._path, "gauge_live*_*.db")):
            match = _LIVE_FILE.search(path)
            if match and not _alive(int(match.group(1))):
                mark_process_dead(int(match.group(1)), self._path)  # type: ignore[no-untyped-call]
        collected: Iterable[Metric] = super().collect()  # type: ignore[no-untyped-call]
        return collected


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@lru_cache(maxsize=1)
def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: every process's files, or this process's registry."""
    path = multiprocess_dir()
    if path is None:
        return LOCAL_REGISTRY
    registry = CollectorRegistry()
    ReapingCollector(registry, path)  # type: ignore[no-untyped-call]
    return registry


def render() -> bytes:
    """The Prometheus text exposition of all metrics (blocking: file reads)."""
    return generate_latest(scrape_registry())


_port_server_started = False


def serve_on_port(port: int) -> bool:
    """Serve the metrics on 127.0.0.1:`port` from a thread, once per process.

    False when the port is taken: with `catalog serve` the supervisor process holds it
    and serves every worker's metrics, so a worker finding it taken has nothing to do.
    """
    global _port_server_started
    if _port_server_started:
        return True
    try:
        start_http_server(port, addr="127.0.0.1", registry=scrape_registry())
    except OSError as error:
        logger.info("metrics port %d not served by this process: %s", port, error)
        return False
    _port_server_started = True
    logger.info("metrics served on http://127.0.0.1:%d/metrics", port)
    return True


def process_exiting() -> None:
    """A worker's clean exit: drop its live gauges from the totals."""
    path = multiprocess_dir()
    if path is not None:
        mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]


@contextmanager
def multiprocess_directory() -> Iterator[Path]:
    """A fresh multiprocess directory for the processes started inside; removed after.

    Created under an existing PROMETHEUS_MULTIPROC_DIR if one is set (e.g. a tmpfs).
    """
    parent = multiprocess_dir()
    path = Path(tempfile.mkdtemp(prefix="catalog-metrics-", dir=parent))
    os.environ[ENV] = str(path)
    _use_multiprocess_values()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _use_multiprocess_values() -> None:
    # prometheus-client picks its value class when first imported: if it was imported
    # before the variable was set, pick again (metrics created from now on use it).
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    metrics.cache_clear()
    scrape_registry.cache_clear()
