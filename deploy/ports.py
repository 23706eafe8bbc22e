"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"

# Ports handed out by this process: the kernel may offer a port again once its probe socket
# is closed, before the server we gave it to has bound it.
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback TCP port that nothing listens on now and this process has not handed out."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found in 100 tries")


def is_listening(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
