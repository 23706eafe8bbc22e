"""`X-Catalog-LSN`: read-your-writes across read replicas (the HTTP side of db/replicas.py).

With DATABASE_REPLICA_URLS set, a write's response carries the primary's WAL position
after its commit. A client that sends it back on later reads never gets data older than
that: a replica that has not replayed it yet is skipped. Without replicas the header is
neither read nor sent.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from catalog.api.middleware.asgi import Headers, adding_headers
from catalog.db.replicas import format_lsn, parse_lsn
from catalog.db.unit_of_work import UnitOfWork

LSN_HEADER = "X-Catalog-LSN"
_STATE_KEY = "catalog_lsn"
_READS = frozenset({"GET", "HEAD"})


def route_reads(request: Request, uow: UnitOfWork) -> None:
    """Tell the unit of work where its reads may go: anywhere for a GET without a token;
    to a replica that has replayed the token's position; to the primary for any write
    request (its reads decide what it writes)."""
    uow.primary_only = request.method not in _READS
    value = request.headers.get(LSN_HEADER)
    if value is None:
        return
    position = parse_lsn(value) if len(value) <= 17 else None
    if position is None:
        issue = {
            "type": "value_error",
            "loc": ("header", LSN_HEADER),
            "msg": "must be a WAL position as returned by a write, like 16/B374D848",
            "input": value[:64],
        }
        raise RequestValidationError([issue])
    uow.seen = position


def remember_position(request: Request, uow: UnitOfWork) -> None:
    """After the commit: keep the position for `ConsistencyTokenMiddleware` to send."""
    if uow.commit_position is not None:
        request.scope.setdefault("state", {})[_STATE_KEY] = format_lsn(uow.commit_position)


class ConsistencyTokenMiddleware:
    """Adds `X-Catalog-LSN` to the response of a request that wrote (pure ASGI: the
    unit of work commits before the response starts, so the position is known by then)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def position() -> Headers:
            value = scope.get("state", {}).get(_STATE_KEY)
            return () if value is None else ((b"x-catalog-lsn", value.encode("ascii")),)

        await self.app(scope, receive, adding_headers(send, position))
