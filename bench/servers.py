"""The servers under load: uvicorn processes started, watched and stopped by the run.

A server is one uvicorn process group: with `--workers N`, a supervisor and N worker
processes. Its CPU time is the whole group's (plus that of any helper process charged to
it, such as the PgBouncer it talks through); its peak RSS is the largest process's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from deploy.ports import HOST, free_port
from deploy.procs import group_members

REPO = Path(__file__).resolve().parents[1]
UVICORN = str(Path(sys.executable).with_name("uvicorn"))
GRANIAN = str(Path(sys.executable).with_name("granian"))
SERVERS = ("uvicorn", "granian")  # `--server`: what serves the apps (issue 15)
START_TIMEOUT = 30.0


@dataclass
class Server:
    """One uvicorn process group serving `app` with `workers` worker processes."""

    name: str
    app: str  # "module:factory"
    env: dict[str, str]
    workers: int = 1
    # Processes outside the group whose CPU time counts as this server's (its PgBouncer).
    charged_pids: tuple[int, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    server: str = "uvicorn"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        if self.server == "granian":
            # The same loop (uvloop), one process per worker, no access log, ASGI.
            return [
                GRANIAN,
                "--interface",
                "asgi",
                "--factory",
                "--loop",
                "uvloop",
                "--no-ws",
                "--workers",
                str(self.workers),
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                self.app,
            ]
        return [
            UVICORN,
            "--factory",
            self.app,
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--workers",
            str(self.workers),
            "--host",
            HOST,
            "--port",
            str(self.port),
        ]

    def start(self, log_dir: Path) -> None:
        """Start the process and wait until GET /health answers 200."""
        self.log_path = log_dir / f"{self.name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we stop exactly what we started
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health in {START_TIMEOUT:.0f} s")

    def _pids(self) -> list[int]:
        """The running group's processes (the supervisor and its workers), else none."""
        if self.process is None or self.process.poll() is not None:
            return []
        return group_members(self.process.pid) or [self.process.pid]

    def peak_rss_mib(self) -> float | None:
        """The largest peak resident set size (VmHWM) of the group's processes, in MiB:
        one worker's (with a single worker, the server process itself)."""
        return self._largest("VmHWM")

    def rss_mib(self) -> float | None:
        """The largest resident set size (VmRSS) of the group's processes now, in MiB."""
        return self._largest("VmRSS")

    def _largest(self, field: str) -> float | None:
        values = [_status_mib(pid, field) for pid in self._pids()]
        measured = [value for value in values if value is not None]
        return max(measured) if measured else None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the group and the charged processes have used so far."""
        pids = self._pids()
        if not pids:
            return None
        return sum(cpu_seconds(pid) or 0.0 for pid in [*pids, *self.charged_pids])

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the process group we started (SIGKILL if it lingers)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process `pid` has used so far; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime: fields 14 and 15 of proc_pid_stat(5), the 12th and 13th after ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_mib(pid: int, field: str) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None
