"""`python -m bench.where`: where a request's CPU goes, part by part, app beside app (issue 15).

py-spy samples `bench.floor` (each app in-process, one request at a time, production
settings, observing as `--observe` says) and every sample taken while requests were being
served is put in one *part* of the request (`PARTS`): the innermost frame that names a
part decides, so FastAPI's routing under the service's middleware counts as routing, and
the JSON decoding inside PyJWT as the token check. The table gives each part's share of
the samples and its µs per request (samples ÷ rate ÷ requests): on a loaded machine the µs
swell together, the shares hold.

    .venv/bin/python -m bench.where                                   # item, service + by-hand
    .venv/bin/python -m bench.where --only item,page,create --observe off

Samples outside the requests (imports, the dataset check, building the apps) are left
out; the event loop's own turns (reading PostgreSQL's answers, timers) are a part of their
own.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.floor import APPS, SCENARIOS

RATE = 500  # samples per second: enough for 1% resolution, light enough not to skew
WARM_REQUESTS = 20  # bench.floor's warm-up requests per scenario
MIDDLEWARE = "service middleware"
_MIDDLEWARE_MODULE = re.compile(r"\(catalog/api/(?:middleware/)?(\w+)\.py")
# (part, substrings of a frame "function (file:line)"), innermost first wins. Frames in
# none of them (the standard library's json, hmac, contextlib...) go to their caller.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "observing: access line",
        ("_AccessLog", "(logging/", "JsonFormatter", "TextFormatter", "RequestIdFilter"),
    ),
    (
        "observing: metrics",
        ("(prometheus_client/", "(catalog/telemetry/", "(catalog/db/observe.py", "Hook.emit"),
    ),
    ("token check (PyJWT)", ("(jwt/",)),
    ("PostgreSQL driver (asyncpg)", ("(asyncpg/connection.py", "(asyncpg/prepared_stmt.py")),
    (
        "connection pool (SQLAlchemy's; by hand, asyncpg's)",
        ("(sqlalchemy/", "(catalog/db/checkin.py", "(asyncpg/pool.py"),
    ),
    ("PostgreSQL driver (asyncpg)", ("(asyncpg/",)),
    ("validation, serialization (pydantic)", ("(pydantic/", "(pydantic_core/")),
    ("FastAPI dependencies and parameters", ("(fastapi/dependencies/", "(fastapi/_compat/")),
    (
        "routing",
        ("matches (", "._match (", "effective_candidates", "_handle_selected", "Router.app ("),
    ),
    (MIDDLEWARE, ("(catalog/api/middleware/", "(catalog/api/consistency.py")),
    ("service code: routes, services, SQL", ("(catalog/",)),
    ("by-hand app code", ("(bench/by_hand.py",)),
    ("baseline app code", ("(bench/baseline.py",)),
    ("framework: FastAPI, Starlette", ("(fastapi/", "(starlette/")),
)
# What the event loop does on its own: its turns, the socket reads that wake asyncpg, the
# timers. Called by any part above (asyncpg's socket writes), the time is that part's.
EVENT_LOOP = "event loop (socket reads, timers)"
OTHER = "other"


def part_of(frames: Sequence[str]) -> str:
    """The part a sample belongs to: the innermost frame that names one."""
    for frame in reversed(frames):
        for part, needles in PARTS:
            if any(needle in frame for needle in needles):
                if part == MIDDLEWARE and (module := _MIDDLEWARE_MODULE.search(frame)):
                    return f"{MIDDLEWARE}: {module[1]}"  # each guard's own price
                return part
    if any("(asyncio/" in frame or "(selectors.py" in frame for frame in frames):
        return EVENT_LOOP
    return OTHER


SETTING_UP = ("_app (bench/floor.py", "_find_and_load", "lifespan", "_token (bench/floor.py")


def serving(frames: Sequence[str]) -> bool:
    """Whether a sample was taken while requests were served: in `_measure`, or in a turn
    of the event loop (asyncpg's answers are read there), and not setting up."""
    if any(marker in frame for frame in frames for marker in SETTING_UP):
        return False
    return any("_measure (bench/floor.py" in f or "_run_once (asyncio/" in f for f in frames)


def tally(raw: Path) -> collections.Counter[str]:
    """Samples per part, from py-spy's raw output (one `frame;frame;... count` per line)."""
    parts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if serving(frames):
            parts[part_of(frames)] += int(count)
    return parts


def profile(app: str, scenario: str, args: argparse.Namespace, work: Path) -> Path:
    """Run bench.floor for one app and scenario under py-spy; the raw samples' file."""
    raw = work / f"{app}-{scenario}.txt"
    floor = [sys.executable, "-m", "bench.floor", "--apps", app, "--only", scenario]
    floor += ["--rounds", str(args.rounds), "--requests", str(args.requests)]
    floor += ["--observe", args.observe]
    if args.database_url:
        floor += ["--database-url", args.database_url]
    command = [args.py_spy, "record", "-f", "raw", "-r", str(RATE), "-o", str(raw), "--"]
    subprocess.run(command + floor, check=True, stdout=subprocess.DEVNULL)
    return raw


def table(scenario: str, tallies: dict[str, collections.Counter[str]], requests: int) -> str:
    """One scenario's parts, the apps side by side: µs per request and share."""
    apps = list(tallies)
    seen = sorted({part for counts in tallies.values() for part in counts})
    order = []
    for part in [*dict.fromkeys(part for part, _ in PARTS), EVENT_LOOP, OTHER]:
        order += (
            [p for p in seen if p.startswith(f"{MIDDLEWARE}:")] if part == MIDDLEWARE else [part]
        )
    head = "| part | " + " | ".join(f"{app} µs | {app} %" for app in apps) + " |"
    rule = "|---|" + "--:|--:|" * len(apps)
    lines = [f"`{scenario}`", "", head, rule]
    totals = {app: sum(tallies[app].values()) for app in apps}
    for part in order:
        if not any(tallies[app][part] for app in apps):
            continue
        cells = []
        for app in apps:
            samples = tallies[app][part]
            cells.append(f"{samples / RATE / requests * 1e6:,.0f}")
            cells.append(f"{100 * samples / max(totals[app], 1):.1f}")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    cells = []
    for app in apps:
        cells += [f"**{totals[app] / RATE / requests * 1e6:,.0f}**", "100"]
    lines.append("| **all** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.where", description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--only", default="item", help=f"scenarios: {','.join(SCENARIOS)}")
    parser.add_argument("--apps", default="service,fastapi-by-hand", help=f"of {APPS}")
    parser.add_argument("--observe", choices=("on", "off"), default="on")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--py-spy", default=str(Path(sys.executable).with_name("py-spy")))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="catalog-where-"))
    served = args.rounds * args.requests + WARM_REQUESTS
    print(f"py-spy at {RATE} Hz over bench.floor, observing {args.observe}, {served} requests")
    for scenario in [s for s in args.only.split(",") if s]:
        tallies = {app: tally(profile(app, scenario, args, work)) for app in args.apps.split(",")}
        print()
        print(table(scenario, tallies, served))
    return 0


if __name__ == "__main__":
    sys.exit(main())
