"""`python -m bench.shapes`: serve the service on the dataset, time and check every shape.

Exit status: 0 when every answer agreed with plain SQL (or was the documented refusal),
1 otherwise. Whether the medians meet the goal is reported, not an exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from bench import dataset
from bench.lineup import SERVICE_APP
from bench.servers import Server
from bench.shapes import check, matrix, params, report, sqlite_copy, timing

DEFAULT_ROUNDS = 7
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1/catalog_bench"


def goal_ms(backend: str, items: int) -> float:
    """Issue 14's goal for a shape's median: PostgreSQL 25 ms at 1M, 50 ms at 10M;
    SQLite 100 ms at 1M."""
    if backend == "sqlite":
        return 100.0
    return 25.0 if items <= 1_000_000 else 50.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.shapes",
        description="Time every kind of item-list request one at a time; check each with SQL.",
    )
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--items", type=int, default=dataset.DatasetSpec.items)
    parser.add_argument("--users", type=int, default=dataset.DatasetSpec.users)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL dataset (default: make bench's database for --items)",
    )
    parser.add_argument("--sqlite-path", type=Path, help="SQLite copy (default bench/data/)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="timed rounds")
    parser.add_argument("--only", default="", help="shapes whose label contains this text")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the dataset")
    parser.add_argument("--min-q-length", type=int, help="override the build's documented rule")
    parser.add_argument("--max-offset", type=int, help="override the build's documented rule")
    parser.add_argument("--count-cap", type=int, help="override the build's documented rule")
    parser.add_argument("--goal-ms", type=float, help="median goal (default: issue 14's)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.items < 100 or args.users < 1:
        parser.error("--rounds >= 1, --items >= 100 and --users >= 1")
    return args


def _log(message: str) -> None:
    print(f"[shapes] {message}", file=sys.stderr, flush=True)


def _prepare(args: argparse.Namespace) -> str:
    """Build or reuse the dataset; its SQLAlchemy URL."""
    spec = dataset.DatasetSpec(users=args.users, items=args.items)
    if args.backend == "sqlite":
        path = args.sqlite_path or sqlite_copy.default_path(spec)
        sqlite_copy.ensure(path, spec, rebuild=args.rebuild)
        return sqlite_copy.url(path)
    from bench.run import default_database_url

    url: str = args.database_url or default_database_url(args.items)
    dataset.ensure_dataset(url, spec, rebuild=args.rebuild)
    return url


def _rules(args: argparse.Namespace, url: str, secret: str) -> check.Rules:
    rules = check.rules_from_settings(url, secret)
    overrides = {
        "min_q_length": args.min_q_length,
        "max_offset": args.max_offset,
        "count_cap": args.count_cap,
    }
    return dataclasses.replace(rules, **{k: v for k, v in overrides.items() if v is not None})


def _oracle_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def measure(args: argparse.Namespace, url: str) -> report.Result:
    """Serve the service on `url`, check and time every shape."""
    secret = secrets.token_urlsafe(48)
    rules = _rules(args, url, secret)
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": secret,
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "WARNING",
        "METRICS": "off",
        "ACCESS_LOG": "false",
        "LOG_FORMAT": "text",
    }
    server = Server("service", SERVICE_APP, env)
    # Autocommit: no transaction held open for the length of the run.
    engine = create_engine(_oracle_url(url), isolation_level="AUTOCOMMIT")
    work_dir = Path(tempfile.mkdtemp(prefix="catalog-shapes-"))
    try:
        with engine.connect() as conn:
            chosen = params.choose(conn)
            shapes = [s for s in matrix.build(chosen, rules.max_tags) if args.only in s.label]
            server.start(work_dir)
            load_before = os.getloadavg()
            with httpx.Client(base_url=server.base_url, timeout=120) as client:
                runs = []
                for shape in shapes:
                    runs.append(timing.probe(client, conn, shape, rules))
                _log(f"{len(runs)} shapes checked; {args.rounds} timed round(s)")
                timing.time_rounds(client, runs, args.rounds)
            load_after = os.getloadavg()
    finally:
        server.stop()
        engine.dispose()
    return report.Result(
        backend=args.backend,
        items=chosen.items,
        rounds=args.rounds,
        rules=rules,
        runs=runs,
        goal_ms=args.goal_ms or goal_ms(args.backend, chosen.items),
        load=(load_before[0], load_after[0]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    url = _prepare(args)
    result = measure(args, url)
    print(report.render(result, markdown=args.markdown))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report.as_json(result), option=orjson.OPT_INDENT_2))
    _log(f"done in {time.perf_counter() - started:.0f} s")
    return 1 if result.wrong else 0
