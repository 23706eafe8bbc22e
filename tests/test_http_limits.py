"""Request heads bounded in size and in time, by `catalog serve` itself (issue 18, finding 2).

Before: uvicorn with httptools buffered a header of any size (two 200 MB headers took the
server from 154 to 603 MB, and the connections stayed open) and waited forever for a head
sent one line every few seconds. Each test starts the service and speaks raw HTTP/1.1.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import sqlite_only
from tests.telemetry.test_serve import Served, serve

MAX_HEADER_BYTES = 4096
HEADER_TIMEOUT_SECONDS = "2"
WAIT_LIMIT_S = 30.0  # a bound on waiting for the server, never a measure of speed


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    with serve(
        database_url,
        tmp_path,
        MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        HEADER_TIMEOUT_SECONDS=HEADER_TIMEOUT_SECONDS,
    ) as running:
        yield running


def _connect(served: Served) -> socket.socket:
    address = urlsplit(served.base_url)
    connection = socket.create_connection((address.hostname, address.port), timeout=5)
    connection.settimeout(WAIT_LIMIT_S)
    return connection


def _answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def _get(served: Served, head: bytes) -> bytes:
    with _connect(served) as connection:
        connection.sendall(head)
        return _answer(connection)


def _head(*headers: bytes) -> bytes:
    lines = [b"GET /health HTTP/1.1", b"Host: x", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@sqlite_only
def test_a_head_past_the_limit_is_431_and_the_rest_is_never_read(
    backend: str, served: Served
) -> None:
    sent = 0
    with _connect(served) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        try:
            while sent < 200 * 1024 * 1024:  # 200 MB, never finished
                connection.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server closed: the send fails
            pass
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert sent < 200 * 1024 * 1024  # the server stopped reading long before the end
    assert _get(served, _head()).startswith(b"HTTP/1.1 200 ")  # and still serves


@sqlite_only
def test_the_limit_is_on_the_whole_head(backend: str, served: Served) -> None:
    fits = [b"X-%d: %s" % (n, b"v" * 900) for n in range(3)]
    too_many = [b"X-%d: %s" % (n, b"v" * 900) for n in range(5)]  # each line fits, not all
    assert _get(served, _head(*fits)).startswith(b"HTTP/1.1 200 ")
    assert _get(served, _head(*too_many)).startswith(b"HTTP/1.1 431 ")


@sqlite_only
def test_a_head_that_never_completes_is_cut(backend: str, served: Served) -> None:
    # One header line every half second: each line is prompt, the head never ends.
    with _connect(served) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        connection.settimeout(0.5)
        deadline = time.monotonic() + WAIT_LIMIT_S
        answer = None
        line = 0
        while answer is None:
            assert time.monotonic() < deadline, "the connection was never cut"
            try:
                answer = connection.recv(65536)
            except TimeoutError:
                try:
                    connection.sendall(b"X-%d: y\r\n" % line)
                    line += 1
                except OSError:
                    answer = b""
            except OSError:
                answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


@sqlite_only
def test_a_slow_head_that_completes_in_time_is_served(backend: str, served: Served) -> None:
    with _connect(served) as connection:
        for part in (b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            connection.sendall(part)
        assert _answer(connection).startswith(b"HTTP/1.1 200 ")


@sqlite_only
def test_a_connection_that_sends_nothing_is_closed(backend: str, served: Served) -> None:
    with _connect(served) as connection:
        answer = _answer(connection)  # returns once the server closes it (bounded wait)
    assert answer.startswith(b"HTTP/1.1 408 ")
