"""`make bench` / `python -m bench.run`: load the service and the baseline, print one table.

Steps: (re)build the dataset on PostgreSQL, start both servers (uvicorn, one worker each),
check they answer every scenario alike, count the SQL and round trips per request
in-process, then load each scenario with wrk on the service and the baseline in turn
(warm-up, then the measured interval), and print the table with the issue's targets.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import httpx
from deploy.pgbouncer import PgBouncer

from bench import counting, dataset, lineup, load, report, scenarios
from bench.servers import Server

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1/catalog_bench"
README = Path(__file__).resolve().parent / "README.md"
LAST_RUN_START, LAST_RUN_END = "<!-- last-run:start -->", "<!-- last-run:end -->"
SETTLE_TIMEOUT_S = 20.0


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; `args.scenarios` is the list of scenarios to run, in order."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Load-test the Catalog service against a Starlette + asyncpg baseline.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL database to (re)build and use (env BENCH_DATABASE_URL; default"
        " catalog_bench on the local server, catalog_bench_<items> for another size)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--search-connections", type=int, default=8, help="wrk connections for `search`"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCENARIO",
        help=f"run only these (repeatable or comma-separated): {', '.join(scenarios.BY_NAME)}",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the dataset")
    parser.add_argument("--skip-baseline", action="store_true", help="load the service only")
    parser.add_argument(
        "--server",
        choices=("uvicorn", "granian"),
        default="uvicorn",
        help="what serves every app: uvicorn (uvloop + httptools) or Granian (issue 15)",
    )
    parser.add_argument(
        "--skip-by-hand",
        action="store_true",
        help="do not load fastapi-by-hand, FastAPI over asyncpg without guards (issue 15)",
    )
    parser.add_argument(
        "--skip-observed",
        action="store_true",
        help="do not measure the service with metrics and JSON logs on (issue 9's cost)",
    )
    parser.add_argument(
        "--cost-rounds",
        type=int,
        default=1,
        help="measure the service off/on this many times each per scenario (ABBA order)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes per server"
    )
    parser.add_argument(
        "--via-pgbouncer",
        action="store_true",
        help="also load the service through a private PgBouncer (transaction mode)",
    )
    parser.add_argument(
        "--items", type=int, default=dataset.DatasetSpec.items, help="items in the dataset"
    )
    parser.add_argument(
        "--update-readme", action="store_true", help="write the result into bench/README.md"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for value in args.only for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in scenarios.BY_NAME]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(scenarios.BY_NAME)}"
        )
    args.scenarios = [s for s in scenarios.SCENARIOS if not names or s.name in names]
    args.database_url = args.database_url or default_database_url(args.items)
    if min(args.duration, args.connections, args.search_connections, args.threads) <= 0:
        parser.error("--duration, --connections, --search-connections, --threads must be > 0")
    if args.warmup < 0 or args.items < 100 or min(args.cost_rounds, args.workers) < 1:
        parser.error("--warmup must be >= 0, --items >= 100, --cost-rounds and --workers >= 1")
    return args


def default_database_url(items: int) -> str:
    """The local database of a dataset size: each size keeps its own (10M takes minutes)."""
    if items == dataset.DatasetSpec.items:
        return DEFAULT_DATABASE_URL
    return f"{DEFAULT_DATABASE_URL}_{items}"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _login(server: Server, ds: dataset.Dataset) -> str:
    response = httpx.post(
        f"{server.base_url}/auth/token",
        data={"username": ds.superuser_email, "password": ds.superuser_password},
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:200]}")
    token: str = response.json()["access_token"]
    return token


def _check_answers(
    servers: dict[str, Server],
    targets: dict[str, dict[str, scenarios.Target]],
    chosen: list[scenarios.Scenario],
    token: str,
) -> list[str]:
    """Send each scenario's probes to the service (and fastapi-by-hand) and to the baseline;
    describe every difference."""
    mismatches = []
    for name in ("service", report.BY_HAND):
        if name not in servers:
            continue
        with (
            httpx.Client(base_url=servers[name].base_url, timeout=120) as service,
            httpx.Client(base_url=servers["baseline"].base_url, timeout=120) as baseline,
        ):
            for scenario in chosen:
                pairs = zip(
                    targets[name][scenario.name].probes,
                    targets["baseline"][scenario.name].probes,
                    strict=True,
                )
                for on_service, on_baseline in pairs:
                    problem = scenarios.compare(
                        scenario,
                        scenarios.send(service, on_service, token),
                        scenarios.send(baseline, on_baseline, token),
                    )
                    if problem:
                        request = f"{on_service.method} {on_service.path[:90]}"
                        who = "" if name == "service" else f" {name}:"
                        mismatches.append(f"{scenario.name} ({request}):{who} {problem}")
    return mismatches


def _update_readme(text: str) -> None:
    content = README.read_text()
    pattern = re.compile(re.escape(LAST_RUN_START) + ".*?" + re.escape(LAST_RUN_END), re.S)
    if not pattern.search(content):
        _log(f"{README} has no {LAST_RUN_START} section; not updated")
        return
    README.write_text(pattern.sub(lambda _: f"{LAST_RUN_START}\n{text}\n{LAST_RUN_END}", content))
    _log(f"updated {README}")


def _describe(args: argparse.Namespace, ds: dataset.Dataset) -> report.RunReport:
    spec = ds.spec
    load1, load5, _ = os.getloadavg()
    return report.RunReport(
        settings=(
            f"wrk {args.threads} threads, {args.connections} connections"
            f" ({args.search_connections} for search), {args.warmup:g} s warm-up +"
            f" {args.duration:g} s measured per scenario and server, servers alternating;"
            + (
                " uvicorn --loop uvloop --http httptools --no-access-log"
                if args.server == "uvicorn"
                else " granian --interface asgi --loop uvloop --no-ws"
            )
            + f" --workers {args.workers} (each server);"
            f" PostgreSQL session settings of the service (both): {args.server_settings};"
            + (
                ""
                if args.skip_observed
                else f" service off/on measured {args.cost_rounds} time(s) each (ABBA);"
            )
            + f" load average at start {load1:.1f} (1 min) / {load5:.1f} (5 min)"
        ),
        dataset=(
            f"{spec.users:,} users, {spec.tags} tags, {spec.items:,} items"
            f" ({ds.item_tags:,} item-tag links), seed {spec.seed}; filtered: tag={ds.tag},"
            f" price {ds.min_price}..{ds.max_price}; search: q={ds.q!r}"
            f" ({ds.q_matches:,} matches); deep pages at offset {scenarios.deep_depth(ds):,}"
        ),
    )


def _order(names: list[str], index: int, cost_rounds: int) -> list[str]:
    """Who is loaded when, for one scenario.

    The order flips from one scenario to the next, so a drift in machine load favours
    no side. The service off and on run next to each other, `cost_rounds` times each in
    ABBA order (off, on, on, off...), the baseline once in the middle; the service through
    PgBouncer next to a run of the service direct.
    """
    off, on, pooled = "service", report.OBSERVED, report.VIA_PGBOUNCER
    rest = [n for n in names if n != pooled]
    if on not in rest:
        order = rest
    else:
        pairs = [[off, on] if r % 2 == 0 else [on, off] for r in range(cost_rounds)]
        cost = [name for pair in pairs for name in pair]
        half = len(cost) // 2
        others = [n for n in rest if n not in (off, on)]
        order = cost[:half] + others + cost[half:] if cost_rounds > 1 else cost + others
    if pooled in names:  # right next to a run of the service direct, which it is compared to
        order = [pooled, *order] if order[0] == off else [*order, pooled]
    return order if index % 2 == 0 else list(reversed(order))


def _load_all(
    args: argparse.Namespace,
    wrk: str,
    ds: dataset.Dataset,
    servers: dict[str, Server],
    targets: dict[str, dict[str, scenarios.Target]],
    token: str,
    result: report.RunReport,
    work_dir: Path,
) -> None:
    for index, scenario in enumerate(args.scenarios):
        connections = args.search_connections if scenario.search else args.connections
        result.connections[scenario.name] = connections
        result.loads[scenario.name] = {}
        for name in _order(list(servers), index, args.cost_rounds):
            server, target = servers[name], targets[name][scenario.name]
            lua = load.script(scenario.lua, work_dir)
            lua_args = list(scenarios.with_token(target, token))
            url = server.base_url + target.path
            options = {"connections": connections, "threads": args.threads}
            if args.warmup:
                load.run_wrk(wrk, url, lua, lua_args, seconds=args.warmup, **options)
            cpu_before = server.cpu_seconds()
            measured = load.run_wrk(wrk, url, lua, lua_args, seconds=args.duration, **options)
            cpu_after = server.cpu_seconds()
            if cpu_before is not None and cpu_after is not None:
                measured = dataclasses.replace(measured, cpu_seconds=cpu_after - cpu_before)
            runs = result.runs.setdefault(scenario.name, {}).setdefault(name, [])
            runs.append(measured)
            result.loads[scenario.name][name] = load.combine(runs)
            _log(
                f"{scenario.name:<11} {name:<8} {measured.rps:8.0f} req/s"
                f"  p50 {measured.p50_ms:8.2f} ms  p99 {measured.p99_ms:8.2f} ms"
                f"  errors {measured.errors}"
            )
            if not measured.requests:
                result.notes.append(
                    f"{scenario.name}/{name}: no request completed in the measured interval"
                )
            cancelled = dataset.settle(ds.url, SETTLE_TIMEOUT_S)
            if cancelled:
                note = (
                    f"{scenario.name}/{name}: {cancelled} queries still running"
                    f" {SETTLE_TIMEOUT_S:.0f} s after the run were cancelled"
                )
                result.notes.append(note)
                _log(note)


def run(args: argparse.Namespace) -> str:
    """The whole benchmark; returns the rendered report."""
    wrk = load.ensure_wrk()
    ds = dataset.ensure_dataset(
        args.database_url, dataset.DatasetSpec(items=args.items), rebuild=args.rebuild
    )
    secret = secrets.token_urlsafe(48)
    lineup.check_connections(args, secret)
    args.server_settings = counting.service_session_settings(args.database_url, secret)
    with lineup.pgbouncer(args, secret) as bouncer:
        return _measure(args, wrk, ds, secret, bouncer)


def _measure(
    args: argparse.Namespace,
    wrk: str,
    ds: dataset.Dataset,
    secret: str,
    bouncer: PgBouncer | None,
) -> str:
    """Start the servers, check and count, load them all, stop them; the report."""
    work_dir = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    servers = lineup.servers(args, secret, work_dir, bouncer)
    result = _describe(args, ds)
    result.postgresql = dataset.server_version(ds.url)
    completed = False
    try:
        for server in servers.values():
            server.start(work_dir)
        _log("servers up: " + ", ".join(f"{s.name} {s.base_url}" for s in servers.values()))
        token = _login(servers["service"], ds)
        minted = lineup.deep_cursor_paths(args, secret, work_dir, ds)
        targets = {
            name: {
                s.name: (
                    scenarios.fixed(minted[lineup.cursor_kind(name)])
                    if s.name == "deep_cursor" and minted
                    else scenarios.resolve(s, ds, server.base_url)
                )
                for s in args.scenarios
            }
            for name, server in servers.items()
        }
        if "baseline" in servers:
            result.mismatches = _check_answers(servers, targets, args.scenarios, token)
            result.answers_checked = True
            for mismatch in result.mismatches:
                _log(f"answers differ: {mismatch}")
        dataset.settle(ds.url, SETTLE_TIMEOUT_S)
        _log("counting SQL statements and round trips per request (in-process)")
        probes = {
            server: {name: target.probes[0] for name, target in by_scenario.items()}
            for server, by_scenario in targets.items()
        }
        result.counts = counting.count_queries(
            args.database_url, secret, token, probes, server_settings=args.server_settings
        )
        _load_all(args, wrk, ds, servers, targets, token, result, work_dir)
        load1, load5, _ = os.getloadavg()
        result.notes.append(f"load average at the end: {load1:.1f} (1 min) / {load5:.1f} (5 min)")
        for name, server in servers.items():
            result.rss_mib[name] = server.peak_rss_mib()
            result.rss_now_mib[name] = server.rss_mib()
            if server.process is not None and server.process.poll() is not None:
                result.notes.append(f"{name} exited during the run: {server.log_tail(5)}")
        completed = True
    finally:
        for server in servers.values():
            server.stop()
        dataset.cleanup(ds)
        if completed:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            _log(f"server logs and scripts kept in {work_dir}")
    return report.render(result)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 when the run completed (whether or not targets are met).

    `--shapes` runs the list shape matrix instead (`python -m bench.shapes`, its own
    options follow), whose exit status says whether every answer was right.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--shapes" in argv:
        from bench.shapes.cli import main as shapes_main

        argv.remove("--shapes")
        return shapes_main(argv)
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    try:
        text = run(args)
    except KeyboardInterrupt:
        _log("interrupted; servers stopped")
        return 130
    print(text)
    _log(f"done in {time.perf_counter() - started:.0f} s")
    if args.update_readme:
        _update_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
