"""A one-member etcd (v3 API) on free loopback ports: the store Patroni keeps its leader lock in.

One member is enough on one machine: it is what makes the lock atomic, not a second point of
failure under test. A real deployment runs three or five members on separate hosts.
"""

from __future__ import annotations

import atexit

import httpx

from deploy.ports import HOST, free_port
from deploy.procs import Process, Service, find_binary, private_dir, remove_dir

ETCD_BIN = "/usr/bin/etcd"
START_TIMEOUT = 30.0


class Etcd(Service):
    """One etcd member; `client_url` is what Patroni's `etcd3.hosts` points at."""

    def __init__(self, name: str = "etcd0") -> None:
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.dir = private_dir("etcd")
        self.log_path = self.dir / "etcd.log"
        self._process: Process | None = None
        atexit.register(self.close)

    @property
    def client_url(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    def command(self) -> list[str]:
        """The etcd command line (every setting is a flag; there is no config file)."""
        return [
            find_binary(ETCD_BIN),
            f"--name={self.name}",
            f"--data-dir={self.dir / 'data'}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.name}={self.peer_url}",
            f"--initial-cluster-token=catalog-{self.client_port}",
            "--initial-cluster-state=new",
        ]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start etcd and wait until /health reports it healthy."""
        self._process = Process("etcd", self.command(), self.log_path)
        self._process.start()
        self._process.wait_ready(self.healthy, timeout=timeout, what="/health")

    def healthy(self) -> bool:
        """Whether etcd answers /health with health=true."""
        try:
            response = httpx.get(f"{self.client_url}/health", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("health") == "true"

    def close(self) -> None:
        """Stop etcd and delete its data."""
        atexit.unregister(self.close)
        if self._process is not None:
            self._process.stop()
        remove_dir(self.dir)
