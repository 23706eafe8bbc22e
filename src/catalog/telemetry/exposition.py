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
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from catalog.telemetry.metrics import Metrics

ENV = "PROMETHEUS_MULTIPROC_DIR"
LOCAL_REGISTRY = CollectorRegistry()
_LIVE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db$")
logger = logging.getLogger("catalog.metrics")


def multiprocess_dir() -> str | None:
    """The multiprocess directory, when this process shares its metrics with others."""
    return os.environ.get(ENV) or None


_metrics: dict[str | None, Metrics] = {}
_registries: dict[str | None, CollectorRegistry] = {None: LOCAL_REGISTRY}


def metrics() -> Metrics:
    """This process's metric families (created on first use, in the current mode)."""
    path = multiprocess_dir()
    found = _metrics.get(path)
    if found is None:
        if path is not None:
            _pick_value_class()  # a worker that inherited the directory: its own pid
        found = _metrics[path] = Metrics(LOCAL_REGISTRY if path is None else None)
    return found


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


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: every process's files, or this process's registry."""
    path = multiprocess_dir()
    found = _registries.get(path)
    if found is None:
        found = _registries[path] = CollectorRegistry()
        ReapingCollector(found, path)  # type: ignore[no-untyped-call]
    return found


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
    _pick_value_class()
    try:
        yield path
    finally:
        if parent is None:
            del os.environ[ENV]
        else:
            os.environ[ENV] = parent
        _pick_value_class()
        shutil.rmtree(path, ignore_errors=True)


def _pick_value_class() -> None:
    # prometheus-client picks where values live (process memory or the directory's
    # files) when first imported; pick again for metrics created from now on.
    values = sys.modules.get("prometheus_client.values")
    if values is None:
        return
    if multiprocess_dir() is None:
        values.ValueClass = values.MutexValue  # type: ignore[attr-defined]
    else:
        # Its files are per process, and every write checks that the process is still
        # the one that opened them (a fork). With os.getpid, a system call, that check was
        # most of a write, and a request makes about seven: this pid is read from memory,
        # kept right across forks by `_pid_after_fork`.
        values.ValueClass = values.MultiProcessValue(_process_id)  # type: ignore[attr-defined]


_pid = os.getpid()


def _process_id() -> int:
    return _pid


def _pid_after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_pid_after_fork)
