"""Fast JSON responses (orjson) that encode datetimes the way Pydantic does (UTC as Z)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

_OPTIONS = orjson.OPT_UTC_Z


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
