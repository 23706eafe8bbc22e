"""Every request ends: a whole-request deadline, and cancellation when the client leaves.

Both work the same way: the request runs under `asyncio.timeout`, and a client that
disconnects before its response is complete moves the deadline to now. Cancelling the
request rolls back its unit of work (a commit already under way is let finish: see
`UnitOfWork.__aexit__`); a statement waiting on a lock is cancelled in the database too.
A request that runs out of time before its response started is answered 503 with
Retry-After; one whose client left is answered nothing.

The disconnect watcher (a task reading the server's `receive` once the body is in) starts
only when a request is still running `WATCH_AFTER_SECONDS` after it began: a task per
request costs more CPU than most requests' own work (about a sixth of a `GET /items/{id}`),
and a client that left earlier is seen as soon as the watcher starts (the server keeps the
disconnect for the next `receive`).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.api.errors import OutageLog, unavailable_response

logger = logging.getLogger("catalog.api")
LATE_DETAIL = "The service could not answer in time; retry later"
late_log = OutageLog(message="request deadline reached, answering 503")
WATCH_AFTER_SECONDS = 0.05


class DeadlineMiddleware:
    """Bound each HTTP request to `timeout` seconds and to its client's presence."""

    def __init__(self, app: ASGIApp, *, timeout: float, retry_after: int) -> None:
        self.app = app
        self.timeout = timeout
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()  # from then on only a disconnect can arrive
        gone = asyncio.Event()
        started = finished = False

        async def receive_body() -> Message:
            if body_read.is_set():
                # The watcher below owns the server's receive once the body is in.
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body", False):
                body_read.set()
            return message

        async def send_response(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        loop = asyncio.get_running_loop()
        ends = loop.time() + self.timeout
        # No deadline timer at first: the timer that starts the watcher also sets it.
        deadline = asyncio.timeout(None)

        async def watch() -> None:
            await body_read.wait()
            message = await receive()
            if message["type"] == "http.disconnect" and not finished:
                gone.set()
                deadline.reschedule(loop.time())

        watcher: asyncio.Task[None] | None = None

        def start_watching() -> None:
            nonlocal watcher
            deadline.reschedule(ends)
            if not finished:
                watcher = asyncio.create_task(watch())

        try:
            async with deadline:
                timer = loop.call_at(min(loop.time() + WATCH_AFTER_SECONDS, ends), start_watching)
                try:
                    await self.app(scope, receive_body, send_response)
                finally:
                    timer.cancel()
                    if watcher is not None:
                        watcher.cancel()
        except TimeoutError:
            if not deadline.expired():
                raise  # not ours
            if gone.is_set():
                logger.info(
                    "%s %s: client disconnected, work cancelled", scope["method"], scope["path"]
                )
                return
            late_log.note(
                TimeoutError(f"{scope['method']} {scope['path']} ran past {self.timeout} s")
            )
            if not started:
                response = unavailable_response(self.retry_after, LATE_DETAIL)
                await response(scope, receive_body, send)
