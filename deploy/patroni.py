"""A high-availability PostgreSQL cluster: etcd + 3 Patroni nodes + HAProxy, on loopback ports.

Each Patroni node runs (and owns) one PostgreSQL 15 server. The node holding the leader lock
in etcd is the primary; the others stream from it, one of them synchronously
(`synchronous_mode`), so a failover never loses a commit acknowledged to a client. When
the leader's postmaster dies, Patroni fails over at once (`primary_start_timeout: 0`)
instead of restarting it in place; the old leader comes back as a replica via pg_rewind
(or a fresh copy if that fails). HAProxy's write port follows the leader.

The configuration of every node is the dict built by `node_config()`, written out as a
YAML file a person can read next to the node's data (see deploy/README.md).
"""

from __future__ import annotations

import atexit
import signal
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from deploy.etcd import Etcd
from deploy.haproxy import Backend, HAProxy
from deploy.ports import HOST, free_port
from deploy.postgres import PG_BIN, SUPERUSER
from deploy.procs import (
    Process,
    Service,
    end_group,
    find_binary,
    freeze_tree,
    give_to_service_user,
    pid_alive,
    private_dir,
    remove_dir,
    signal_pids,
    thaw_tree,
    wait_until,
)

PATRONI_BIN = "/usr/bin/patroni"
SCOPE = "catalog"
START_TIMEOUT = 120.0

# The cluster-wide ("dynamic") settings Patroni stores in etcd at bootstrap. The timings are
# tuned for a fast failover on one machine: a leader that stops renewing its lock loses it
# after `ttl` s; every node runs its HA loop each `loop_wait` s; etcd and PostgreSQL calls
# are retried for `retry_timeout` s. Patroni needs ttl >= loop_wait + 2 * retry_timeout.
DCS_SETTINGS: dict[str, Any] = {
    "ttl": 10,
    "loop_wait": 1,
    "retry_timeout": 4,
    "maximum_lag_on_failover": 1024 * 1024,  # a replica further behind may not be promoted
    "synchronous_mode": True,  # COMMIT waits for one standby, the only failover candidate
    "synchronous_node_count": 1,
    # 0: a crashed primary fails over at once instead of restarting in place. (This Patroni
    # version reads the old name, master_start_timeout, too.)
    "primary_start_timeout": 0,
    "postgresql": {
        "use_pg_rewind": True,
        "use_slots": True,
        # If pg_rewind cannot bring an old leader back, copy it afresh from the new one.
        "remove_data_directory_on_rewind_failure": True,
        "remove_data_directory_on_diverged_timelines": True,
        "parameters": {
            "wal_level": "replica",
            "hot_standby": "on",
            "wal_log_hints": "on",  # pg_rewind (data checksums are on as well)
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "wal_keep_size": "128MB",
            "max_connections": 100,
        },
    },
}
# Trust on the socket and loopback: on one machine the harness needs no passwords. A real
# deployment uses scram-sha-256 on its network (deploy/README.md).
PG_HBA = [
    "local all all trust",
    "host all all 127.0.0.1/32 trust",
    "local replication all trust",
    "host replication all 127.0.0.1/32 trust",
]


@dataclass(frozen=True)
class Member:
    """One node as Patroni's `GET /cluster` reports it."""

    name: str
    role: str  # "leader", "sync_standby" or "replica"
    state: str  # "running", "starting", "stopped", "creating replica", ...
    port: int
    timeline: int | None
    lag: int | None  # bytes behind the leader; None for the leader or when unknown

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Member:
        lag = data.get("lag")
        return cls(
            name=data["name"],
            role=data["role"],
            state=data["state"],
            port=int(data.get("port", 0)),
            timeline=data.get("timeline"),
            lag=lag if isinstance(lag, int) else None,
        )


class PatroniNode:
    """One Patroni process and the PostgreSQL server it manages."""

    def __init__(self, name: str, base_dir: Path) -> None:
        self.name = name
        self.pg_port = free_port()
        self.api_port = free_port()
        self.dir = base_dir / name
        self.data_dir = self.dir / "data"
        self.config_path = base_dir / f"{name}.yml"
        self.log_path = base_dir / f"{name}.log"
        self._process: Process | None = None

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def url(self, database: str = "postgres") -> str:
        """A DATABASE_URL for this node's PostgreSQL, bypassing HAProxy."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.pg_port}/{database}"

    def config(self, etcd_url: str, dcs: Mapping[str, Any]) -> dict[str, Any]:
        """This node's Patroni configuration (the YAML file's content)."""
        return {
            "scope": SCOPE,
            "name": self.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"{HOST}:{self.api_port}",
                "connect_address": f"{HOST}:{self.api_port}",
            },
            "etcd3": {"hosts": [etcd_url.removeprefix("http://")]},
            "bootstrap": {
                "dcs": dict(dcs),
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"{HOST}:{self.pg_port}",
                "connect_address": f"{HOST}:{self.pg_port}",
                "data_dir": str(self.data_dir),
                "bin_dir": str(PG_BIN),
                "pgpass": str(self.dir / "pgpass"),
                "use_unix_socket": True,
                "authentication": {
                    # Passwords are required by Patroni's schema; trust auth ignores them.
                    "superuser": {"username": SUPERUSER, "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": "rewinder", "password": "rewinder"},
                },
                "parameters": {"unix_socket_directories": str(self.dir)},
                "pg_hba": PG_HBA,  # written to pg_hba.conf on every node, bootstrap included
            },
            "watchdog": {"mode": "off"},  # no /dev/watchdog here; see README for production
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }

    def start(self, etcd_url: str, dcs: Mapping[str, Any]) -> None:
        """Write the YAML config and start Patroni (it initializes or clones PostgreSQL)."""
        self.dir.mkdir(mode=0o700)
        give_to_service_user(self.dir)
        self.config_path.write_text(
            yaml.safe_dump(self.config(etcd_url, dcs), sort_keys=False, default_flow_style=False)
        )
        self._process = Process(
            f"patroni {self.name}", [find_binary(PATRONI_BIN), str(self.config_path)], self.log_path
        )
        self._process.start()

    def check_running(self) -> None:
        """Raise StartError (with the log's tail) if the Patroni process has exited."""
        if self._process is not None:
            self._process.check_running()

    def postmaster_pid(self) -> int | None:
        """The pid of this node's postmaster, from postmaster.pid, if it is alive."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def kill_postmaster(self, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to this node's postmaster alone (its backends die on their own); its pid."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError(f"{self.name}: PostgreSQL is not running")
        signal_pids([pid], sig)
        return pid

    def freeze_postgres(self) -> None:
        """SIGSTOP this node's postmaster and its children (Patroni itself keeps running)."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError(f"{self.name}: PostgreSQL is not running")
        freeze_tree(pid)

    def thaw_postgres(self) -> None:
        """SIGCONT what freeze_postgres() stopped."""
        pid = self.postmaster_pid()
        if pid is not None:
            thaw_tree(pid)

    def close(self) -> None:
        """Stop Patroni (which stops its PostgreSQL); kill a PostgreSQL it left behind."""
        if self._process is not None:
            self.thaw_postgres()
            self._process.stop(timeout=30)
        pid = self.postmaster_pid()
        if pid is not None:  # Patroni died without stopping it: the postmaster leads its group
            end_group(pid, grace=0)


def _routed_port(url: str) -> int | None:
    """The port of the primary a connection to `url` lands on; None if it fails or is a standby."""
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            port, standby = conn.execute(
                "SELECT inet_server_port(), pg_is_in_recovery()"
            ).fetchone() or (None, True)
    except psycopg.Error:
        return None
    return None if standby else int(port)


class PatroniCluster(Service):
    """etcd, `size` Patroni nodes and HAProxy, all in one temp dir; `write_url()` is the entry.

    `start()` returns once a leader and a synchronous standby run and HAProxy's write port
    reaches the leader. `close()` (or leaving the `with` block) stops everything.
    """

    def __init__(self, size: int = 3, *, dcs_settings: Mapping[str, Any] | None = None) -> None:
        self.dir = private_dir("patroni")
        self.dcs = DCS_SETTINGS | dict(dcs_settings or {})
        self.etcd = Etcd()
        self.nodes = [PatroniNode(f"node{i}", self.dir) for i in range(1, size + 1)]
        self.haproxy = HAProxy([Backend(n.name, n.pg_port, n.api_port) for n in self.nodes])
        atexit.register(self.close)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start etcd, every node at once (one bootstraps, the others clone it), and HAProxy."""
        find_binary(PATRONI_BIN)
        self.etcd.start()
        for node in self.nodes:
            node.start(self.etcd.client_url, self.dcs)
        self.haproxy.start()
        self.wait_healthy(timeout)

    def node(self, name: str) -> PatroniNode:
        """The node called `name`."""
        return next(n for n in self.nodes if n.name == name)

    def members(self) -> list[Member]:
        """The members as the first Patroni REST API that answers sees them (by name)."""
        for node in self.nodes:
            try:
                response = httpx.get(f"{node.api_url}/cluster", timeout=1.0)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                return [Member.from_json(m) for m in response.json().get("members", [])]
        return []

    def leader(self) -> Member | None:
        """The member holding the leader lock, if any."""
        return next((m for m in self.members() if m.role == "leader"), None)

    def write_url(self, database: str = "postgres") -> str:
        """HAProxy's write port: always the current leader."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.haproxy.write_port}/{database}"

    def read_url(self, database: str = "postgres") -> str:
        """HAProxy's read port: the running replicas, round robin."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.haproxy.read_port}/{database}"

    def _check_processes(self) -> None:
        for node in self.nodes:
            node.check_running()

    def _healthy_leader(self) -> Member | None:
        """The leader, if every member runs on its timeline, one is a sync standby, and
        HAProxy's write port reaches the leader."""
        self._check_processes()
        members = self.members()
        leader = next((m for m in members if m.role == "leader"), None)
        if leader is None or leader.state != "running" or len(members) != len(self.nodes):
            return None
        others = [m for m in members if m is not leader]
        if any(m.state != "running" or m.lag is None for m in others):
            return None
        if any(m.timeline != leader.timeline for m in others if m.timeline is not None):
            return None
        if self.dcs.get("synchronous_mode") and not any(m.role == "sync_standby" for m in others):
            return None
        return leader if _routed_port(self.write_url()) == leader.port else None

    def wait_healthy(self, timeout: float = 60.0) -> Member:
        """Wait until the whole cluster is back in shape (after start or a failover); the leader."""
        return wait_until(self._healthy_leader, timeout=timeout, what="Patroni cluster healthy")

    def kill_leader_postmaster(self) -> str:
        """SIGKILL the leader's postmaster; the name of the node that was leader."""
        leader = self.leader()
        if leader is None:
            raise RuntimeError("the cluster has no leader")
        self.node(leader.name).kill_postmaster()
        return leader.name

    def wait_for_new_leader(self, old: str, timeout: float = 60.0) -> str:
        """Wait until a node other than `old` leads and HAProxy routes writes to it; its name."""

        def new_leader() -> str | None:
            self._check_processes()
            leader = self.leader()
            if leader is None or leader.name == old or leader.state != "running":
                return None
            return leader.name if _routed_port(self.write_url()) == leader.port else None

        return wait_until(new_leader, timeout=timeout, what=f"a leader other than {old}")

    def close(self) -> None:
        """Stop HAProxy, the nodes (and their PostgreSQL) and etcd; delete every file."""
        atexit.unregister(self.close)
        self.haproxy.close()
        with ThreadPoolExecutor(len(self.nodes)) as pool:  # each stop takes seconds
            list(pool.map(PatroniNode.close, self.nodes))
        self.etcd.close()
        remove_dir(self.dir)


def wait_writable(url: str, timeout: float = 60.0) -> float:
    """Retry a write transaction on `url` until one commits; the seconds it took."""
    started = time.monotonic()

    def writes() -> bool:
        try:
            with psycopg.connect(
                url, connect_timeout=2, autocommit=True, options="-c statement_timeout=5s"
            ) as conn:
                conn.execute("SELECT txid_current()")  # assigns an xid: a real commit
        except psycopg.Error:
            return False
        return True

    wait_until(writes, timeout=timeout, what=f"a write through {url}")
    return time.monotonic() - started
