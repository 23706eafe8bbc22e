"""Bounded requests: body size, query string size and number of query parameters.

Pure ASGI, checked before routing and before any byte of the body is parsed:
- a body larger than `max_body_bytes` is 413: at once from its Content-Length, without
  reading it; when it is chunked (no Content-Length), as soon as the bytes read exceed
  the limit (raised from `receive`, so the endpoint never sees the rest);
- a query string longer than `max_query_string_bytes` is 414;
- more than `max_query_params` query parameters is 422 naming the most repeated one.
Each answer closes the connection, so an unread body is never read.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import unquote_plus

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.api.middleware.asgi import header
from catalog.api.responses import json_error_messages

BODY_TOO_LARGE = "Request body too large (at most {limit} bytes)"
QUERY_TOO_LONG = "Query string too long (at most {limit} bytes)"
TOO_MANY_PARAMETERS = "Too many query parameters (at most {limit})"
MAX_NAME = 50  # characters of a parameter name echoed back


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once a body without Content-Length passes the limit.

    An HTTPException, so FastAPI lets it through its body parsing (which turns other
    errors into 400) and the app answers it like any 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, BODY_TOO_LARGE.format(limit=limit), {"Connection": "close"})


class RequestLimitsMiddleware:
    """Refuse oversized requests before they cost anything (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_query_string_bytes: int, max_params: int
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_query = max_query_string_bytes
        self.max_params = max_params
        # Rendered once: these answers cost nothing per request.
        self._too_large = json_error_messages(413, BODY_TOO_LARGE.format(limit=max_body_bytes))
        self._too_long = json_error_messages(
            414, QUERY_TOO_LONG.format(limit=max_query_string_bytes)
        )

    def _too_many(self, query: bytes) -> tuple[Message, Message]:
        # Name the parameter that is repeated most (`tag`, usually): what to fix.
        names = Counter(
            unquote_plus(part.split(b"=", 1)[0].decode("latin-1")) for part in _parts(query)
        )
        name, count = names.most_common(1)[0]
        name = name[:MAX_NAME]
        limit = TOO_MANY_PARAMETERS.format(limit=self.max_params)
        issue = {
            "type": "too_many_parameters",
            "loc": ["query", name],
            "msg": f"{limit}: {name!r} is given {count} times",
        }
        return json_error_messages(422, [issue])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if len(query) > self.max_query:
            await _answer(send, self._too_long)
            return
        if query.count(b"&") >= self.max_params and len(_parts(query)) > self.max_params:
            await _answer(send, self._too_many(query))
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_body:
                await _answer(send, self._too_large)
                return
            # The server delivers no more than Content-Length: nothing else to watch.
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        return limited_receive


def _parts(query: bytes) -> list[bytes]:
    return [part for part in query.split(b"&") if part]


def _content_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # the server refuses malformed framing before we see it


async def _answer(send: Send, messages: tuple[Message, Message]) -> None:
    start, body = messages
    # Copies: middleware outside may set keys on the messages it passes on.
    await send(dict(start))
    await send(dict(body))
