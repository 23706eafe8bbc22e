"""Fast JSON responses (orjson) that encode datetimes the way Pydantic does (UTC as Z)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response
from starlette.types import Message

_OPTIONS = orjson.OPT_UTC_Z
# Tokens and account data must not be kept by any cache (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class ORJSONResponse(JSONResponse):
    """A JSONResponse rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS)


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Render already-shaped data without a second validation pass."""
    return Response(
        orjson.dumps(content, option=_OPTIONS),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def no_content() -> Response:
    """204 with an empty body."""
    return Response(status_code=204)


def json_error_messages(status: int, detail: Any) -> tuple[Message, Message]:
    """The ASGI messages of `{"detail": detail}` with `status`, closing the connection.

    For middleware that answers before the app runs (built once, sent as copies).
    """
    body = orjson.dumps({"detail": detail})
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}
