"""The HTTP/1.1 protocol `catalog serve` runs: uvicorn's httptools one, with its head bounded.

uvicorn bounds neither the size of a request's head (request line and headers) nor the
time it may take to arrive, with httptools: two connections that each sent a 200 MB header
took a worker from 154 to 603 MB, and a header sent one line every 3 s kept its connection
forever (uvicorn's keep-alive timer runs only between requests, and `REQUEST_TIMEOUT` only
once the head is complete). Here:
- a head longer than MAX_HEADER_BYTES is answered 431 and the connection closed. The bytes
  received while a head is incomplete are counted as they arrive, so at most that much
  (plus one read) is ever buffered, whatever the client sends; a head that completes is
  measured exactly (request line, names and values) before the request reaches the app;
- a head that has not fully arrived HEADER_TIMEOUT_SECONDS after its first byte (or after
  the connection opened) is answered 408 and the connection closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from catalog.config import get_settings

HEAD_TOO_LARGE = 431
HEAD_TIMEOUT = 408
_REASONS = {HEAD_TOO_LARGE: b"Request Header Fields Too Large", HEAD_TIMEOUT: b"Request Timeout"}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with a size and a time bound on each request's head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()  # cached: read once per worker, from its environment
        self.max_head_bytes = settings.max_header_bytes
        self.head_timeout = settings.header_timeout_seconds
        self._in_head = True  # a request's head is (or may start) arriving
        self._head_bytes = 0  # bytes received since that head began
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # --- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that sends nothing is cut too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._arm_head_timer()
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes and not self._refused:
            self._refuse(HEAD_TOO_LARGE)

    # --- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._refuse(HEAD_TOO_LARGE)
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head = True  # the next request's head may follow on this connection
        self._head_bytes = 0

    # --- bounds -------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(HEAD_TIMEOUT)

    def _refuse(self, status: int) -> None:
        """Answer `status` (unless a response is under way) and close the connection."""
        self._refused = True
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            reason = _REASONS[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, reason, len(reason), reason)
            )
        self.transport.close()
