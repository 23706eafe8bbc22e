"""Server processes: started in their own process group, waited for with bounds, always ended.

PostgreSQL, PgBouncer and Patroni refuse to run as root, so when we are root every server
runs as the `postgres` system user, in temp dirs it owns. Every program started here also
*works* in such a dir (`run(cwd=...)`, `Process(cwd=...)`, by default the dir of its log):
never in the caller's working directory, which the `postgres` user may not be allowed to
enter (a clone under a mode-700 directory; HAProxy then refuses to start). Each `Process`
keeps its output in a log file whose tail is quoted in every error; `atexit` ends whatever a
crash or a missing `close()` left running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Self, TypeVar

SERVICE_USER = "postgres"
T = TypeVar("T")


class MissingBinaryError(RuntimeError):
    """A program the infrastructure needs is not installed (`make infra` installs them)."""


class StartError(RuntimeError):
    """A server did not come up; the message ends with the tail of its log."""


class PortInUseError(StartError):
    """A server could not listen: its port was taken between `free_port()` and its start
    (ports are probed, closed and handed out; another process may get the same one)."""


# What PostgreSQL, PgBouncer, uvicorn, etcd and HAProxy write when they cannot bind.
ADDRESS_IN_USE = re.compile(r"address already in use|address in use", re.IGNORECASE)


def start_retrying_taken_ports(
    start: Callable[[], None], repick: Callable[[], None], *, attempts: int = 5
) -> None:
    """`start()`; when it fails with PortInUseError, `repick()` free ports and start again
    (at most `attempts` starts). Other errors, and the last attempt's, go to the caller."""
    for attempt in range(1, attempts + 1):
        try:
            start()
            return
        except PortInUseError:
            if attempt == attempts:
                raise
            repick()


def find_binary(path: str) -> str:
    """The program at `path` (absolute, or a name looked up on PATH), or MissingBinaryError."""
    found = path if os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        raise MissingBinaryError(f"{path} is not installed (run `make infra`)")
    return found


def service_user() -> str | None:
    """The user servers run as: `postgres` when we are root, else None (ourselves)."""
    return SERVICE_USER if os.geteuid() == 0 else None


def _service_env(extra: Mapping[str, str] | None, as_service_user: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    user = service_user()
    if user is not None and as_service_user:
        env |= {"HOME": pwd.getpwnam(user).pw_dir, "USER": user, "LOGNAME": user}
    return env | dict(extra or {})


def _identity(as_service_user: bool) -> tuple[str | None, list[str] | None]:
    """(user, supplementary groups) for Popen: the service user and no root groups, or us."""
    user = service_user() if as_service_user else None
    return user, ([] if user is not None else None)


def private_dir(prefix: str) -> Path:
    """A new temp dir (mode 700) owned by the service user."""
    path = Path(tempfile.mkdtemp(prefix=f"catalog-{prefix}-"))
    give_to_service_user(path)
    return path


def give_to_service_user(path: Path) -> None:
    """Make `path` belong to the service user (a no-op when we are not root)."""
    user = service_user()
    if user is not None:
        shutil.chown(path, user, user)


def remove_dir(path: Path) -> None:
    """Delete a temp dir the harness made, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def run(
    argv: Sequence[str], *, cwd: Path, timeout: float, env: Mapping[str, str] | None = None
) -> str:
    """Run a command to completion as the service user, in `cwd` (a dir it owns); its output,
    or RuntimeError with it."""
    user, groups = _identity(True)
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=_service_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=user,
            group=user,
            extra_groups=groups,
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{argv[0]} took longer than {timeout:.0f} s: {error.output}") from error
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{output}")
    return done.stdout


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """Call `check` until it returns something truthy (returned) or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# --- the process table ----------------------------------------------------------------------


def _stat_fields() -> Iterable[tuple[int, int, int]]:
    """(pid, ppid, process group) of every live process (zombies left out), from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name may hold spaces and parentheses: split after the last ")".
        state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if state != "Z":
            yield int(entry.name), int(ppid), int(pgrp)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` in the process tree (children first)."""
    children: dict[int, list[int]] = {}
    for child, parent, _ in _stat_fields():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(children.get(child, []))
    return found


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group."""
    return [pid for pid, _, group in _stat_fields() if group == pgid]


def signal_pids(pids: Iterable[int], sig: signal.Signals) -> None:
    """Send `sig` to each pid, skipping those already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def freeze_tree(pid: int) -> None:
    """SIGSTOP a process, then all its descendants (stopped first, it cannot fork new ones)."""
    signal_pids([pid], signal.SIGSTOP)
    signal_pids(descendants(pid), signal.SIGSTOP)


def thaw_tree(pid: int) -> None:
    """SIGCONT the descendants of a process, then the process itself."""
    signal_pids(descendants(pid), signal.SIGCONT)
    signal_pids([pid], signal.SIGCONT)


def pid_alive(pid: int) -> bool:
    """Whether a process exists (zombies included) and we may signal it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def end_group(pgid: int, *, grace: float = 10.0) -> None:
    """Wait up to `grace` s for a process group to empty, then SIGKILL what is left."""
    if _group_gone(pgid, grace):
        return
    signal_pids(group_members(pgid), signal.SIGCONT)  # let stopped processes take the signal
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not _group_gone(pgid, 10.0):
        raise RuntimeError(f"process group {pgid} survived SIGKILL")


# --- servers -------------------------------------------------------------------------------


class Service:
    """Something the harness starts and must always remove: `with X() as x:` does both."""

    def start(self) -> None:
        """Start it and wait until it is ready."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop it and delete its files (safe to call more than once)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- one server ------------------------------------------------------------------------------


class Process:
    """One long-running server, the leader of its own process group.

    `start()` launches it with its output going to `log_path`, in `cwd` (default: the dir of
    `log_path`, the server's own temp dir); `stop()` signals the whole group and waits for it
    to be gone (SIGKILL after the timeout). An atexit hook stops it if the owner never does.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        as_service_user: bool = True,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.as_service_user = as_service_user
        self.stop_signal = stop_signal
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env or {})
        self.cwd = cwd if cwd is not None else log_path.parent
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where this start's output begins in the (appended) log

    @property
    def pid(self) -> int:
        """The pid (= process group id) of the running server."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._popen.pid

    def start(self) -> None:
        """Launch the program (the caller waits for whatever "ready" means for it)."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        user, groups = _identity(self.as_service_user)
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            self._popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=_service_env(self.env, self.as_service_user),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: we signal exactly what we started
                user=user,
                group=user,
                extra_groups=groups,
            )
        atexit.register(self.stop)

    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._popen is not None and self._popen.poll() is None

    def check_running(self) -> None:
        """Raise StartError with the log's tail if the server has exited."""
        if self._popen is not None and self._popen.poll() is not None:
            error = PortInUseError if ADDRESS_IN_USE.search(self._this_start_log()) else StartError
            raise error(
                f"{self.name} exited with {self._popen.returncode}; "
                f"{self.log_path}:\n{log_tail(self.log_path)}"
            )

    def _this_start_log(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, check: Callable[[], object], *, timeout: float, what: str) -> None:
        """Wait until `check()` is truthy, failing early (with the log) if the server exits."""

        def ready() -> bool:
            self.check_running()
            if check():
                return True
            # Some servers (PgBouncer) stay up when they cannot listen on their port.
            if ADDRESS_IN_USE.search(self._this_start_log()):
                self.stop()
                raise PortInUseError(
                    f"{self.name} could not listen; {self.log_path}:\n{log_tail(self.log_path)}"
                )
            return False

        try:
            wait_until(ready, timeout=timeout, what=f"{self.name}: {what}", interval=0.1)
        except TimeoutError as error:
            raise StartError(f"{error}; {self.log_path}:\n{log_tail(self.log_path)}") from None

    def send_signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the server process only (not its group)."""
        if self.running():
            os.kill(self.pid, sig)

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the server process to exit (reaping it); whether it did."""
        if self._popen is None:
            return True
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, sig: signal.Signals | None = None, timeout: float = 15.0) -> None:
        """Send the server `sig` (default: `stop_signal`) and wait for its whole process group
        to be gone; SIGKILL the group after `timeout` s."""
        atexit.unregister(self.stop)
        if self._popen is None:
            return
        pgid = self._popen.pid
        if self._popen.poll() is None:
            signal_pids(group_members(pgid), signal.SIGCONT)  # a frozen process cannot exit
            signal_pids([pgid], sig or self.stop_signal)  # the server stops its own children
            if not self.wait_exit(timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.wait_exit(timeout)
        end_group(pgid, grace=timeout)
