"""Load generation with wrk: one scenario against one server, summarized as numbers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

WRK_DIR = Path(__file__).resolve().parent / "wrk"
RESULT_PREFIX = "BENCH_RESULT "
WRK_TIMEOUT_S = 5  # a request slower than this counts as a timeout error


@dataclass(frozen=True)
class LoadResult:
    """What a client saw during the measured interval."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    status_errors: int  # HTTP status >= 400
    # CPU time the server process used in the interval (user + system), when measured.
    cpu_seconds: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float | None:
        """Server CPU per request: what a request costs, less sensitive to machine load."""
        if self.cpu_seconds is None or not self.requests:
            return None
        return self.cpu_seconds / self.requests * 1e6

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


def ensure_wrk() -> str:
    """The wrk executable; installed with apt-get when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise SystemExit("bench: wrk is missing; install it (Debian/Ubuntu: apt-get install wrk)")
    if os.geteuid() != 0:
        raise SystemExit("bench: wrk is missing; run `sudo apt-get install -y wrk` and retry")
    print("[bench] installing wrk (apt-get install -y wrk)", file=sys.stderr, flush=True)
    subprocess.run([apt, "install", "-y", "wrk"], check=True, stdout=sys.stderr)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: apt-get did not provide wrk")
    return found


def script(name: str, work_dir: Path) -> Path:
    """The scenario's Lua script with the reporting `done` appended, written to work_dir."""
    path = work_dir / f"{name}.lua"
    if not path.exists():
        body = (WRK_DIR / f"{name}.lua").read_text() + "\n" + (WRK_DIR / "report.lua").read_text()
        path.write_text(body)
    return path


def run_wrk(
    wrk: str,
    url: str,
    lua: Path,
    args: list[str],
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
) -> LoadResult:
    """Run wrk once and parse the JSON line our `done` prints."""
    command = [
        wrk,
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        f"--script={lua}",
        url,
    ]
    if args:
        command += ["--", *args]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = orjson.loads(line[len(RESULT_PREFIX) :])
            return LoadResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
                status_errors=data["status"],
            )
    raise RuntimeError(
        f"wrk gave no result (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    )


def combine(runs: list[LoadResult]) -> LoadResult:
    """Several measured intervals of one server as one: requests and seconds added up,
    latency percentiles averaged (an approximation, close when the runs are alike)."""
    if len(runs) == 1:
        return runs[0]
    return LoadResult(
        requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs),
        p50_ms=sum(r.p50_ms for r in runs) / len(runs),
        p99_ms=sum(r.p99_ms for r in runs) / len(runs),
        socket_errors=sum(r.socket_errors for r in runs),
        status_errors=sum(r.status_errors for r in runs),
        cpu_seconds=None
        if any(r.cpu_seconds is None for r in runs)
        else sum(r.cpu_seconds or 0.0 for r in runs),
    )
