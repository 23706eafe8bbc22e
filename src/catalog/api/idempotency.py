"""`Idempotency-Key` on POST: the HTTP side of services/idempotency.py.

A POST with the header runs as one transaction that claims the key, does the write and
stores the response; a retry with the same key and body gets that response again, marked
`Idempotent-Replayed: true`. Keys belong to the authenticated user (registration, which
has none, shares one anonymous scope: its fingerprint includes the password, which is why
fingerprints are keyed with a secret derived from SECRET_KEY, never a bare hash).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.responses import Response

from catalog.db.unit_of_work import UnitOfWork
from catalog.security import derived_key
from catalog.services import idempotency

_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as header values travel
REPLAYED_HEADER = "Idempotent-Replayed"
ANONYMOUS = "anonymous"
_KEPT_HEADERS = ("etag", "location")  # what a replay repeats besides the body
FINGERPRINT_PURPOSE = "idempotency-fingerprint"


def _header_error(key: str, message: str) -> RequestValidationError:
    issue = {"type": "value_error", "loc": ("header", "Idempotency-Key"), "msg": message}
    return RequestValidationError([issue | {"input": key[:64]}])


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description=(
                "A unique value (1-255 visible ASCII characters) chosen by the client for "
                "this write. Retrying with the same key and body returns the first "
                "response instead of writing again (for the configured time, default 24 h)"
            ),
        ),
    ] = None,
) -> str | None:
    """The Idempotency-Key header, validated (422 if malformed)."""
    if key is not None and not _KEY.fullmatch(key):
        raise _header_error(key, "must be 1 to 255 visible ASCII characters")
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


async def respond_once(
    request: Request,
    uow: UnitOfWork,
    key: str | None,
    *,
    scope: str,
    body: BaseModel,
    write: Callable[[], Awaitable[Response]],
) -> Response:
    """`write()`'s response, produced once per (scope, key); replayed for retries.

    `body` is the validated request body: it is only dumped and fingerprinted when a key
    was given (most writes carry none and pay nothing here).
    """
    if key is None:
        return await write()
    settings = request.app.state.settings
    key_for_fingerprints = derived_key(request.app.state.signing_key, FINGERPRINT_PURPOSE)
    digest = idempotency.fingerprint(
        request.method, request.url.path, body.model_dump(mode="json"), key=key_for_fingerprints
    )
    ttl = timedelta(hours=settings.idempotency_key_ttl_hours)
    try:
        stored = await idempotency.claim(uow, scope, key, digest, ttl)
    except idempotency.IdempotencyKeyReusedError as error:
        # A 422 like every other: the list of what is wrong with the request.
        raise _header_error(key, error.detail) from None
    if stored is not None:
        return Response(
            stored.body,
            status_code=stored.status_code,
            headers=stored.headers | {REPLAYED_HEADER: "true"},
            media_type="application/json",
        )
    response = await write()
    kept = {k: v for k, v in response.headers.items() if k in _KEPT_HEADERS}
    await idempotency.complete(
        uow,
        scope,
        key,
        idempotency.StoredResponse(response.status_code, bytes(response.body), kept),
    )
    return response
