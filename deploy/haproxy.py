"""HAProxy in front of a Patroni cluster: a write port that reaches the leader, a read port
that reaches the replicas.

HAProxy does not know who the leader is: it asks every node's Patroni REST API. `/primary`
answers 200 only on the node holding the leader lock, `/replica` only on a running
replica, so the write and read ports follow a failover within a few check intervals.
`on-marked-down shutdown-sessions` cuts the connections to a node that stops being the
leader, so no client keeps writing to (or waiting on) a demoted primary.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass

from deploy.ports import HOST, free_port, is_listening
from deploy.procs import Process, Service, find_binary, private_dir, remove_dir

HAPROXY_BIN = "/usr/sbin/haproxy"
START_TIMEOUT = 20.0
# Health checks every 500 ms; a node is down after 2 failed checks and up after 1 good one:
# a failover is routed about one second after Patroni completes it.
CHECK = "inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1"


@dataclass(frozen=True)
class Backend:
    """One database node: its PostgreSQL port and the port of its Patroni REST API."""

    name: str
    pg_port: int
    api_port: int


def _listen(name: str, port: int, check_path: str, backends: list[Backend]) -> list[str]:
    lines = [
        f"listen {name}",
        f"    bind {HOST}:{port}",
        "    balance roundrobin",
        "    option httpchk",
        # OPTIONS: Patroni answers with the status line alone, which is all HAProxy reads
        # (a GET's body would be cut off, and Patroni would log a traceback each check).
        f"    http-check send meth OPTIONS uri {check_path}",
        "    http-check expect status 200",
        f"    default-server {CHECK} on-marked-down shutdown-sessions",
    ]
    lines += [
        f"    server {b.name} {HOST}:{b.pg_port} maxconn 100 check port {b.api_port}"
        for b in backends
    ]
    return lines


def haproxy_config(
    backends: list[Backend], write_port: int, read_port: int, stats_port: int
) -> str:
    """The haproxy.cfg text: TCP proxies for writes and reads, and a stats page."""
    lines = [
        "global",
        "    maxconn 1000",
        # Health-check changes (not every connection) go to our log file.
        "    log stderr format iso local0 notice",  # each line timestamped
        "",
        "defaults",
        "    log global",
        "    mode tcp",
        "    retries 2",
        "    timeout connect 2s",
        "    timeout client 30m",  # idle pooled connections must not be cut
        "    timeout server 30m",
        "    timeout check 1s",
        "",
        "listen stats",
        "    mode http",
        f"    bind {HOST}:{stats_port}",
        "    stats enable",
        "    stats uri /",
        "",
        *_listen("primary", write_port, "/primary", backends),
        "",
        *_listen("replicas", read_port, "/replica", backends),
    ]
    return "\n".join(lines) + "\n"


class HAProxy(Service):
    """One HAProxy process routing `write_port` to the leader and `read_port` to replicas."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends
        self.write_port = free_port()
        self.read_port = free_port()
        self.stats_port = free_port()
        self.dir = private_dir("haproxy")
        self.config_path = self.dir / "haproxy.cfg"
        self.log_path = self.dir / "haproxy.log"
        self._process: Process | None = None
        atexit.register(self.close)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Write haproxy.cfg, start HAProxy in the foreground, wait until it listens."""
        self.config_path.write_text(
            haproxy_config(self.backends, self.write_port, self.read_port, self.stats_port)
        )
        binary = find_binary(HAPROXY_BIN)
        self._process = Process(
            "haproxy", [binary, "-db", "-f", str(self.config_path)], self.log_path
        )
        self._process.start()
        self._process.wait_ready(
            lambda: is_listening(self.write_port), timeout=timeout, what="listening"
        )

    @property
    def stats_url(self) -> str:
        return f"http://{HOST}:{self.stats_port}/"

    def close(self) -> None:
        """Stop HAProxy and delete its files."""
        atexit.unregister(self.close)
        if self._process is not None:
            self._process.stop()
        remove_dir(self.dir)
