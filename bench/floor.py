"""`python -m bench.floor`: CPU time per request of whole apps, in-process (issue 15).

The service (ENVIRONMENT=production, every guard at its default, METRICS=on in
prometheus-client's multiprocess mode, the JSON access line written to a file),
fastapi-by-hand and the baseline, each called directly as an ASGI app (no sockets, no
HTTP client: what is measured is the app, the database driver's client side included),
one request at a time against the benchmark's database (`make bench` builds it). CPU time
of this process (`time.process_time`) over the requests: PostgreSQL's own work is in
another process and not counted, which makes the figure nearly undisturbed by the other
load of a shared machine. Median of `--rounds` rounds.

    .venv/bin/python -m bench.floor                          # item, every app
    .venv/bin/python -m bench.floor --only item,page --apps service --observe off
    py-spy record -o floor.svg -- .venv/bin/python -m bench.floor --apps service --rounds 9
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.types import ASGIApp, Message

from bench import dataset

SCENARIOS = ("item", "page", "create", "update")
APPS = ("service", "fastapi-by-hand", "baseline")


class _Request:
    """One request as an ASGI server hands it over; the response's status is kept."""

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        token: str,
        content_type: bytes = b"application/json",
    ) -> None:
        headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"floor"), (b"accept", b"*/*")]
        if body:
            headers += [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ]
        if token:
            headers.append((b"authorization", b"Bearer " + token.encode()))
        self.scope_template = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": headers,
            "state": {},
        }
        self.body = body
        self.status = 0
        self.answer = b""

    async def __call__(self, app: ASGIApp) -> None:
        scope = dict(self.scope_template)
        scope["state"] = {}
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:  # the server would wait for the client; nothing more comes
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.answer = b""
            else:
                self.answer += message.get("body", b"")

        await app(scope, receive, send)


def _requests(scenario: str, ds: dataset.Dataset, token: str) -> list[_Request]:
    rng = random.Random(42)
    ids = [rng.randint(ds.min_item_id, ds.max_item_id) for _ in range(500)]
    if scenario == "item":
        return [_Request("GET", f"/items/{i}", "", b"", "") for i in ids]
    if scenario == "page":
        return [_Request("GET", "/items", urlencode({"limit": 50}), b"", "")]
    if scenario == "create":
        body = orjson.dumps(
            {
                "name": "floor item",
                "description": "made by bench.floor",
                "price": 19.99,
                "tags": list(ds.post_tags),
            }
        )
        return [_Request("POST", "/items", "", body, token)]
    body = orjson.dumps({"description": "patched by bench.floor"})
    return [_Request("PATCH", f"/items/{i}", "", body, token) for i in ids]


def _app(name: str, url: str, secret: str, observe: bool) -> ASGIApp:
    if name == "service":
        from catalog.api.app import create_app
        from catalog.config import load_settings

        settings = load_settings(
            database_url=url,
            secret_key=secret,
            environment="production",
            metrics="on" if observe else "off",
            access_log=observe,
            log_format="json" if observe else "text",
            log_level="INFO" if observe else "WARNING",
        )
        return create_app(settings)
    settings_json = os.environ.get("BASELINE_SERVER_SETTINGS")
    server_settings = orjson.loads(settings_json) if settings_json else {}
    if name == "baseline":
        from bench.baseline import create_app as baseline

        return baseline(url, secret, 2, 4, server_settings=server_settings)
    from bench.by_hand import create_app as by_hand

    return by_hand(url, secret, 2, 4, server_settings=server_settings)


async def _token(ds: dataset.Dataset, secret: str) -> str:
    """The bench superuser's bearer token, from the service's own POST /auth/token."""
    app: Any = _app("service", ds.url, secret, observe=False)
    form = urlencode({"username": ds.superuser_email, "password": ds.superuser_password})
    login = _Request(
        "POST", "/auth/token", "", form.encode(), "", b"application/x-www-form-urlencoded"
    )
    async with app.router.lifespan_context(app):
        await login(app)
    if login.status != 200:
        raise SystemExit(f"login failed: {login.status} {login.answer[:200]!r}")
    token: str = orjson.loads(login.answer)["access_token"]
    return token


def _quiet(work: Path) -> None:
    """The service's log lines (the access line among them) go to a file, as a server's do."""
    for handler in logging.getLogger("catalog").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream((work / "access.log").open("a"))


async def _measure(
    name: str, args: argparse.Namespace, ds: dataset.Dataset, secret: str, token: str
) -> dict[str, float]:
    app: Any = _app(name, ds.url, secret, args.observe == "on")
    _quiet(args.work)
    results: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        for scenario in args.scenarios:
            requests = _requests(scenario, ds, token)
            for request in requests[:20]:  # warm: pool, prepared statements, caches
                await request(app)
            if requests[0].status >= 400:
                raise SystemExit(
                    f"{name} {scenario}: {requests[0].status} {requests[0].answer[:300]!r}"
                )
            rounds = []
            for _ in range(args.rounds):
                started = time.process_time()
                for index in range(args.requests):
                    await requests[index % len(requests)](app)
                rounds.append((time.process_time() - started) / args.requests * 1e6)
            results[scenario] = statistics.median(rounds)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--only", default="item", help=f"scenarios: {','.join(SCENARIOS)}")
    parser.add_argument("--apps", default=",".join(APPS), help=f"apps: {','.join(APPS)}")
    parser.add_argument("--observe", choices=("on", "off"), default="on")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args(argv)
    args.scenarios = [s for s in args.only.split(",") if s]
    work = args.work = Path(tempfile.mkdtemp(prefix="catalog-floor-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work)  # before prometheus-client loads
    url = args.database_url or "postgresql://postgres@127.0.0.1/catalog_bench"
    ds = dataset.ensure_dataset(url, dataset.DatasetSpec(), rebuild=False)
    secret = secrets.token_urlsafe(48)
    token = ""
    if {"create", "update"} & set(args.scenarios):
        token = asyncio.run(_token(ds, secret))
    print(f"load average {os.getloadavg()[0]:.1f}; CPU µs per request, median of {args.rounds}")
    for name in args.apps.split(","):
        results = asyncio.run(_measure(name, args, ds, secret, token))
        print(f"{name:<16}" + "".join(f"  {s} {us:7.1f}" for s, us in results.items()))
    dataset.cleanup(ds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
