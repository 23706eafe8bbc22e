"""`python -m bench.overhead`: what the request instrumentation costs, in isolation.

`ObservedRequestsMiddleware` (metrics, the JSON access line, or both) around an ASGI app
that answers at once, in prometheus-client's multiprocess mode, the lines written to a
file; plus one statement observation. CPU time per request, best of 3 rounds: unlike the
load benchmark, nearly undisturbed by the other work of a shared machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROUNDS, REQUESTS = 3, 20_000


class _Route:
    path_format = "/items/{item_id}"


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    scope["route"] = _Route()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _send(message: Message) -> None:
    pass


async def _receive() -> Message:
    return {"type": "http.request"}


async def _per_request(app: ASGIApp) -> float:
    """CPU µs per request through `app` (best of ROUNDS)."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(REQUESTS):
            scope = {"type": "http", "method": "GET", "path": "/items/1", "client": ("::1", 1)}
            await app(scope, _receive, _send)
        best = min(best, (time.process_time() - started) / REQUESTS * 1e6)
    return best


def _per_call(call: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(REQUESTS):
            call()
        best = min(best, (time.process_time() - started) / REQUESTS * 1e6)
    return best


def main() -> int:
    """Print the cost of each part, in µs of CPU per request."""
    work = Path(tempfile.mkdtemp(prefix="catalog-overhead-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work)  # before prometheus-client loads
    from catalog.api.middleware.observed import ObservedRequestsMiddleware
    from catalog.config import load_settings
    from catalog.logs import configure_logging
    from catalog.telemetry import exposition

    configure_logging(load_settings(_env_file=None, log_format="json", log_level="INFO"))
    [handler] = logging.getLogger("catalog").handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream((work / "access.log").open("w"))
    metrics = exposition.metrics()
    variants: dict[str, ASGIApp] = {
        "bare app": _answer,
        "metrics": ObservedRequestsMiddleware(_answer, metrics, access_log=False),
        "access line": ObservedRequestsMiddleware(_answer, None, access_log=True),
        "both": ObservedRequestsMiddleware(_answer, metrics, access_log=True),
    }
    results = {name: asyncio.run(_per_request(app)) for name, app in variants.items()}
    bare = results.pop("bare app")
    for name, micros in results.items():
        print(f"{name:<12} {micros - bare:6.2f} µs per request")
    started = time.perf_counter_ns()
    statement = _per_call(
        lambda: metrics.observe_statement("postgresql", "", started, started, None)
    )
    print(f"{'statement':<12} {statement:6.2f} µs per SQL statement")
    return 0


if __name__ == "__main__":
    sys.exit(main())
