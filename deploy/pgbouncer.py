"""PgBouncer on a free loopback port in front of one PostgreSQL address.

Every database name is forwarded (`* = host=... port=...`) to the upstream as the same user.
Clients authenticate with `auth_type = trust` against a one-line `auth_file` (PgBouncer
needs the user to be listed even under trust); the upstream is trust too. The admin console
(database `pgbouncer`) is open to `postgres`: `show("POOLS")`, `admin("PAUSE")`...
"""

from __future__ import annotations

import atexit
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from deploy.ports import HOST, free_port
from deploy.procs import (
    Process,
    Service,
    find_binary,
    private_dir,
    remove_dir,
    start_retrying_taken_ports,
)

PGBOUNCER_BIN = "/usr/sbin/pgbouncer"
USER = "postgres"
START_TIMEOUT = 20.0
PoolMode = Literal["session", "transaction", "statement"]

# Startup parameters PgBouncer drops instead of refusing the connection. It tracks
# client_encoding, DateStyle, TimeZone, standard_conforming_strings and application_name
# itself; any other parameter fails the login with "unsupported startup parameter".
# extra_float_digits is what JDBC and psycopg2 send. asyncpg sends only client_encoding,
# plus its `server_settings` (the service sends jit and max_parallel_workers_per_gather):
# those must be listed here *and* set with ALTER DATABASE/ROLE ... SET to take effect.
DEFAULT_IGNORED_STARTUP_PARAMETERS: tuple[str, ...] = ("extra_float_digits",)


class PgBouncer(Service):
    """One PgBouncer process; `url(db)` reaches the upstream's `db` through it."""

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = HOST,
        pool_mode: PoolMode = "transaction",
        default_pool_size: int = 20,
        min_pool_size: int = 0,
        reserve_pool_size: int = 0,
        max_client_conn: int = 1000,
        ignore_startup_parameters: Sequence[str] = DEFAULT_IGNORED_STARTUP_PARAMETERS,
        extra_settings: Mapping[str, str | int] | None = None,
        port: int | None = None,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.pool_mode = pool_mode
        self.port = port or free_port()
        # Ours to change if another process takes it before the first start (a restart
        # keeps its port: clients and replicas know it).
        self._may_repick_port = port is None
        self.dir = private_dir("pgbouncer")
        self.config_path = self.dir / "pgbouncer.ini"
        self.log_path = self.dir / "pgbouncer.log"
        self.settings: dict[str, str | int] = {
            "listen_addr": HOST,
            "listen_port": self.port,
            "unix_socket_dir": str(self.dir),
            "auth_type": "trust",
            "auth_file": str(self.dir / "userlist.txt"),
            "admin_users": USER,
            "stats_users": USER,
            "pool_mode": pool_mode,
            "default_pool_size": default_pool_size,
            "min_pool_size": min_pool_size,
            "reserve_pool_size": reserve_pool_size,
            "max_client_conn": max_client_conn,
            "ignore_startup_parameters": ",".join(ignore_startup_parameters),
            # Fail fast instead of queueing clients for the default 120 s when the
            # upstream is down: the fault tests want the error, not the wait.
            "query_wait_timeout": 30,
            "server_connect_timeout": 5,
            "server_login_retry": 1,
            # Backstops for a client that holds a server connection without finishing: an
            # exchange left open (asyncpg's prepare answered, its execute never sent) or a
            # transaction left idle. PostgreSQL ends neither while the backend waits for the
            # client, so the server connection would be lost to every other client until
            # that one comes back. Above anything legitimate here: the API's statements end
            # within seconds, `catalog db upgrade` may wait 300 s for another's migration.
            "query_timeout": 600,
            "idle_transaction_timeout": 60,
            "log_connections": 0,
            "log_disconnections": 0,
        }
        self.settings.update(extra_settings or {})
        self._process: Process | None = None
        atexit.register(self.close)

    def config_text(self) -> str:
        """pgbouncer.ini as written."""
        lines = [
            "[databases]",
            f"* = host={self.upstream_host} port={self.upstream_port}",
            "",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in self.settings.items()),
        ]
        return "\n".join(lines) + "\n"

    def _write_config(self) -> Path:
        (self.dir / "userlist.txt").write_text(f'"{USER}" ""\n')
        self.config_path.write_text(self.config_text())
        return self.config_path

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Write the config, start PgBouncer (in the foreground), wait for its admin console.
        A port of our choosing taken by another process before the first start is chosen again."""
        if self._process is not None and self._process.running():
            return
        if not self._may_repick_port:
            self._start(timeout)
            return
        self._may_repick_port = False

        def repick() -> None:
            self.port = free_port()
            self.settings["listen_port"] = self.port

        start_retrying_taken_ports(lambda: self._start(timeout), repick)

    def _start(self, timeout: float) -> None:
        binary = find_binary(PGBOUNCER_BIN)
        self._process = Process(
            "pgbouncer",
            [binary, str(self._write_config())],
            self.log_path,
            stop_signal=signal.SIGINT,  # SIGTERM would wait for every client to leave
        )
        self._process.start()
        self._process.wait_ready(self._answers, timeout=timeout, what="admin console answering")

    @property
    def pid(self) -> int:
        """The running PgBouncer's pid (e.g. to read its CPU time)."""
        if self._process is None:
            raise RuntimeError("PgBouncer is not started")
        return self._process.pid

    def _answers(self) -> bool:
        try:
            self.show("VERSION")
        except psycopg.OperationalError:
            return False
        return True

    def reload(self) -> None:
        """Rewrite the config and make PgBouncer re-read it (SIGHUP)."""
        self._write_config()
        if self._process is not None:
            self._process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop PgBouncer (SIGINT: close everything now)."""
        if self._process is not None:
            self._process.stop(timeout=10)

    def close(self) -> None:
        """Stop PgBouncer and delete its files."""
        atexit.unregister(self.close)
        self.stop()
        remove_dir(self.dir)

    def url(self, database: str = "postgres") -> str:
        """A DATABASE_URL reaching the upstream's `database` through PgBouncer."""
        return f"postgresql://{USER}@{HOST}:{self.port}/{database}"

    def admin(self, command: str) -> list[dict[str, Any]]:
        """Run an admin console command (SHOW ..., PAUSE, RESUME, RECONNECT...); its rows."""
        # The console speaks only the simple query protocol: a ClientCursor uses it.
        with psycopg.connect(
            self.url("pgbouncer"),
            autocommit=True,
            connect_timeout=2,
            cursor_factory=psycopg.ClientCursor,
        ) as conn:
            cursor = conn.cursor(row_factory=dict_row)
            cursor.execute(command)
            return cursor.fetchall() if cursor.description is not None else []

    def show(self, what: str) -> list[dict[str, Any]]:
        """`SHOW what` on the admin console: POOLS, STATS, SERVERS, CLIENTS, DATABASES..."""
        return self.admin(f"SHOW {what}")

    def pool(self, database: str) -> dict[str, Any]:
        """The SHOW POOLS row of `database` (cl_active, sv_active, sv_idle, maxwait...)."""
        for row in self.show("POOLS"):
            if row["database"] == database and row["user"] == USER:
                return row
        raise LookupError(f"no PgBouncer pool for {database!r} yet")
