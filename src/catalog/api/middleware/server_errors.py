"""The last-resort 500: an exception nothing else handled, logged and answered generically."""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("catalog.api")
_ERROR_BODY = orjson.dumps({"detail": "Internal Server Error"})


class ServerErrorMiddleware:
    """The outermost error boundary of the app's own work.

    Inside `RequestIdMiddleware` (the line and the answer carry the request id) and
    `SecurityHeadersMiddleware` (the answer carries the security headers): an exception
    that escaped everything inside is logged with its traceback and answered with a
    generic 500, never a traceback. Once a response has started it can only be re-raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_seen(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_ERROR_BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _ERROR_BODY})
