"""A private PostgreSQL 15 server in a temp dir, and streaming replicas of it.

`PostgresInstance` runs `postgres` directly (no pg_ctl) as the leader of its own process
group, so the harness knows the postmaster's pid and can kill, freeze or stop exactly that
server. Authentication is `trust` on the unix socket and 127.0.0.1; the WAL settings allow
streaming replicas and, with data checksums, pg_rewind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql

from deploy.ports import HOST, free_port
from deploy.procs import (
    Process,
    Service,
    end_group,
    find_binary,
    freeze_tree,
    give_to_service_user,
    private_dir,
    remove_dir,
    run,
    start_retrying_taken_ports,
    thaw_tree,
    wait_until,
)

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
START_TIMEOUT = 60.0

StopMode = Literal["smart", "fast", "immediate"]
# The postmaster's shutdown signals (see `pg_ctl stop -m`).
STOP_SIGNALS: dict[StopMode, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}

# Written to postgresql.conf's include file; `settings=` adds to or overrides these.
BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": HOST,
    "wal_level": "replica",
    "hot_standby": "on",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "wal_keep_size": "128MB",  # a replica without a slot can still catch up after a pause
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "fsync": "on",  # a crash (kill -9) must lose nothing committed: keep the real guarantee
}
HBA = """\
local all all trust
host all all 127.0.0.1/32 trust
local replication all trust
host replication all 127.0.0.1/32 trust
"""
INCLUDE_FILE = "instance.conf"


def parse_lsn(text: str) -> int:
    """A WAL location ("16/B374D848") as a byte position."""
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PostgresInstance(Service):
    """One PostgreSQL server on a free 127.0.0.1 port, its data and socket in a temp dir.

    Use as a context manager (`with PostgresInstance() as pg:`), or `start()` then `close()`.
    A replica made by `add_replica()` is itself a PostgresInstance with `primary` set.
    """

    def __init__(
        self,
        name: str = "postgres",
        *,
        settings: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()
        # Ours to change if another process takes it before the first start (a restart
        # keeps its port: clients and replicas know it).
        self._may_repick_port = port is None
        self.settings = BASE_SETTINGS | (settings or {})
        self.base_dir = private_dir(name)
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "postgres.log"
        self.primary: PostgresInstance | None = None
        self.slot: str | None = None
        self.replicas: list[PostgresInstance] = []
        self._process: Process | None = None
        self._frozen = False
        atexit.register(self.close)

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        """Whether the data directory exists (initdb or pg_basebackup has run)."""
        return (self.data_dir / "PG_VERSION").exists()

    def _initdb(self) -> None:
        run(
            [
                find_binary(str(PG_BIN / "initdb")),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--data-checksums",  # lets pg_rewind work, and catches torn pages
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",  # a throwaway cluster: skip the fsync of every new file
            ],
            cwd=self.base_dir,
            timeout=120,
        )
        (self.data_dir / "pg_hba.conf").write_text(HBA)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude_if_exists '{INCLUDE_FILE}'\n")

    def _write_settings(self) -> None:
        """This instance's own settings: port, socket dir, and `settings` (replicas rewrite it)."""
        values = self.settings | {
            "port": str(self.port),
            "unix_socket_directories": str(self.base_dir),
        }
        lines = [f"{key} = {_quote(value)}" for key, value in values.items()]
        path = self.data_dir / INCLUDE_FILE
        path.write_text("\n".join(lines) + "\n")
        give_to_service_user(path)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Initialize the data dir if needed, start the postmaster, wait until it accepts SQL.
        A port of our choosing taken by another process before the first start is chosen again."""
        if self.running:
            return
        if not self._may_repick_port:
            self._start(timeout)
            return
        self._may_repick_port = False

        def repick() -> None:
            self.port = free_port()

        start_retrying_taken_ports(lambda: self._start(timeout), repick)

    def _start(self, timeout: float) -> None:
        if not self.initialized:
            self._initdb()
        self._write_settings()
        if self._process is not None:
            # After a kill -9 the old backends linger until they notice the postmaster is
            # gone; a new postmaster refuses to start while they hold the shared memory.
            end_group(self._process.pid, grace=10)
        self._process = Process(
            self.name,
            [find_binary(str(PG_BIN / "postgres")), "-D", str(self.data_dir)],
            self.log_path,
            stop_signal=STOP_SIGNALS["fast"],
        )
        self._process.start()
        self._frozen = False
        self._process.wait_ready(self._accepts_sql, timeout=timeout, what="accepting SQL")

    def _accepts_sql(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    @property
    def running(self) -> bool:
        """Whether the postmaster process is alive (it may be frozen)."""
        return self._process is not None and self._process.running()

    @property
    def pid(self) -> int:
        """The postmaster's pid."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._process.pid

    def stop(self, mode: StopMode = "fast", timeout: float = 30.0) -> None:
        """Shut the server down (`pg_ctl stop -m mode`) and wait until every process is gone."""
        if self._process is None:
            return
        self.thaw()
        self._process.stop(STOP_SIGNALS[mode], timeout=timeout)

    def restart(self, mode: StopMode = "fast") -> None:
        """stop(mode) then start()."""
        self.stop(mode)
        self.start()

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` to the postmaster alone; with SIGKILL wait until it is dead.

        Its backends are left to notice by themselves, as after a real crash; `start()` waits
        for them before starting a new postmaster.
        """
        if self._process is None or not self._process.running():
            raise RuntimeError(f"{self.name} is not running")
        self._process.send_signal(sig)
        if sig == signal.SIGKILL:
            self._process.wait_exit(10)

    def freeze(self) -> None:
        """SIGSTOP the postmaster and all its children: a server that hangs, not one that died."""
        freeze_tree(self.pid)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT what freeze() stopped."""
        if self._frozen and self._process is not None:
            thaw_tree(self.pid)
        self._frozen = False

    def close(self) -> None:
        """Stop this server and its replicas at once and delete their files."""
        atexit.unregister(self.close)
        for replica in self.replicas:
            replica.close()
        self.replicas.clear()
        self.stop("immediate", timeout=10)
        if self.primary is not None and self.slot is not None:
            self.primary._drop_slot(self.slot)
        remove_dir(self.base_dir)

    # --- SQL --------------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """A DATABASE_URL for this server (trust auth: no password)."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def execute(
        self,
        query: str | sql.SQL | sql.Composed,
        params: tuple[Any, ...] | dict[str, Any] | None = None,
        *,
        database: str = "postgres",
        connect_timeout: int = 5,
    ) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit on a new connection; the rows it returns, if any."""
        with psycopg.connect(
            self.url(database), autocommit=True, connect_timeout=connect_timeout
        ) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []

    def scalar(self, query: str, params: tuple[Any, ...] | None = None, **kwargs: Any) -> Any:
        """The first column of the first row of `query`."""
        return self.execute(query, params, **kwargs)[0][0]

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; its URL."""
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def terminate_backends(self, database: str) -> int:
        """pg_terminate_backend() every session on `database`; how many there were."""
        count: int = self.scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        return count

    def in_recovery(self) -> bool:
        """Whether this server is a standby."""
        return bool(self.scalar("SELECT pg_is_in_recovery()"))

    def current_lsn(self) -> int:
        """The primary's current WAL write position (pg_current_wal_lsn)."""
        return parse_lsn(self.scalar("SELECT pg_current_wal_lsn()::text"))

    # --- replication ---------------------------------------------------------------------------

    def add_replica(
        self, delay: float = 0.0, *, name: str | None = None, start: bool = True
    ) -> PostgresInstance:
        """A streaming replica of this server (pg_basebackup -R, through a replication slot).

        `delay` > 0 sets recovery_min_apply_delay: the replica receives WAL at once but
        applies each commit only `delay` seconds after it happened on the primary.
        """
        name = name or f"{self.name}-replica{len(self.replicas) + 1}"
        settings = dict(self.settings)
        if delay > 0:
            settings["recovery_min_apply_delay"] = f"{round(delay * 1000)}ms"
        replica = PostgresInstance(name, settings=settings)
        replica.primary = self
        replica.slot = re.sub(r"\W", "_", name).lower()
        self.replicas.append(replica)
        run(
            [
                find_binary(str(PG_BIN / "pg_basebackup")),
                "--dbname",
                f"host={HOST} port={self.port} user={SUPERUSER}",
                "--pgdata",
                str(replica.data_dir),
                "--write-recovery-conf",  # standby.signal + primary_conninfo
                "--wal-method=stream",
                "--checkpoint=fast",
                "--create-slot",
                "--slot",
                replica.slot,
                "--no-sync",
            ],
            cwd=replica.base_dir,
            timeout=120,
        )
        if start:
            replica.start()
        return replica

    def promote(self) -> None:
        """Promote this standby to a primary and wait until it accepts writes."""
        self.execute("SELECT pg_promote(wait => true)")

    def replay_lsn(self) -> int:
        """The last WAL position this standby has applied (pg_last_wal_replay_lsn)."""
        return parse_lsn(self.scalar("SELECT pg_last_wal_replay_lsn()::text"))

    def lag_bytes(self) -> int:
        """How far this replica's replay is behind its primary's current WAL position."""
        if self.primary is None:
            raise RuntimeError(f"{self.name} is not a replica")
        return max(0, self.primary.current_lsn() - self.replay_lsn())

    def wait_for_replay(self, lsn: int | None = None, timeout: float = 30.0) -> None:
        """Wait until this replica has applied WAL up to `lsn` (default: the primary's now)."""
        if self.primary is None:
            raise RuntimeError(f"{self.name} is not a replica")
        target = lsn if lsn is not None else self.primary.current_lsn()
        wait_until(
            lambda: self.replay_lsn() >= target,
            timeout=timeout,
            what=f"{self.name} replaying up to {target:X}",
        )

    def _drop_slot(self, slot: str) -> None:
        # Best effort: a slot nobody reads makes the primary keep WAL forever.
        if self.running and not self._frozen:
            with contextlib.suppress(psycopg.Error):
                self.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active",
                    (slot,),
                    connect_timeout=2,
                )
