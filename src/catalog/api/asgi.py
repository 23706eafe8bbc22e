"""What the pure-ASGI middlewares share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.types import Message, Send

Headers = Sequence[tuple[bytes, bytes]]


def adding_headers(send: Send, headers: Callable[[], Headers]) -> Send:
    """`send`, appending `headers()` to the response's headers as it starts. Called only
    then, so the headers may depend on what the endpoint did."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start" and (extra := headers()):
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return send_with_headers
