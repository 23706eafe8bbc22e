"""Who is loaded in a run: the service (direct, observed, through PgBouncer) and the baseline.

Every server runs `--workers N` uvicorn workers (`--workers`, default 1), each worker with
its own pool. `--via-pgbouncer` adds a private PgBouncer in transaction mode in front of
the benchmark's database and one more server, the service with DATABASE_POOLER=transaction
connected through it; PgBouncer's CPU time is charged to that server.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import psycopg
from deploy.pgbouncer import USER as PGBOUNCER_USER
from deploy.pgbouncer import PgBouncer
from deploy.ports import HOST
from sqlalchemy.engine import make_url

from bench import dataset, report, scenarios
from bench.servers import Server
from bench.shapes.check import rules_from_settings

SERVICE_APP, BASELINE_APP = "catalog.api.app:create_app", "bench.baseline:create_app"
BY_HAND_APP = "bench.by_hand:create_app"
# Connections PostgreSQL keeps for others while the benchmark runs (psql, the harness's own).
SPARE_CONNECTIONS = 10


def pool_bounds(database_url: str, secret: str) -> tuple[int, int]:
    """One worker's pool: the connections it keeps (DB_POOL_SIZE), and the most it may open
    (DB_POOL_SIZE + DB_MAX_OVERFLOW), from the environment the servers inherit."""
    from catalog.config import load_settings

    settings = load_settings(database_url=database_url, secret_key=secret)
    return settings.db_pool_size, settings.db_pool_size + settings.db_max_overflow


def check_connections(args: argparse.Namespace, secret: str) -> None:
    """Refuse to start when every server's pools could not be open at once.

    Pools keep their connections between scenarios, so at the end of a run each server
    holds up to workers x pool connections (the one through PgBouncer holds PgBouncer's,
    sized the same): more than max_connections would fail a run half-way.
    """
    servers = (
        1
        + (not args.skip_observed)
        + (not args.skip_baseline)
        + (not args.skip_baseline and not args.skip_by_hand)
        + args.via_pgbouncer
    )
    needed = servers * args.workers * pool_bounds(args.database_url, secret)[1]
    with psycopg.connect(dataset.conninfo(args.database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()
    free = int(row[0]) if row else 0
    if needed + SPARE_CONNECTIONS > free:
        raise SystemExit(
            f"bench: {servers} servers x {args.workers} worker(s) x DB_POOL_SIZE (+overflow)"
            f" = {needed} connections, but PostgreSQL has {free} free: use a server with a"
            " larger max_connections (--database-url), fewer servers (--skip-observed,"
            " --skip-baseline) or a smaller DB_POOL_SIZE"
        )


@contextmanager
def pgbouncer(args: argparse.Namespace, secret: str) -> Iterator[PgBouncer | None]:
    """With --via-pgbouncer: a private PgBouncer in transaction mode in front of the database.

    Its server pool holds as many connections as the direct service's workers may open, so
    the comparison measures the pooler's hop and the service's pooler mode (no prepared
    statement cache, time bounds set per transaction), not a smaller pool.
    """
    if not args.via_pgbouncer:
        yield None
        return
    url = make_url(args.database_url)
    if url.password or (url.username or PGBOUNCER_USER) != PGBOUNCER_USER:
        raise SystemExit(
            f"bench: --via-pgbouncer connects as {PGBOUNCER_USER!r} without a password"
            " (trust), as the local test servers allow; this URL names another user or one"
        )
    # A transaction pooler forwards none of the startup parameters the service sends
    # directly (jit, parallel workers): stored in the database, they reach both paths.
    dataset.tune(args.database_url)
    with PgBouncer(
        url.port or 5432,
        upstream_host=url.host or HOST,
        pool_mode="transaction",
        default_pool_size=args.workers * pool_bounds(args.database_url, secret)[1],
    ) as bouncer:
        yield bouncer


def servers(
    args: argparse.Namespace,
    secret: str,
    work_dir: Path,
    bouncer: PgBouncer | None,
    max_offset: int | None = None,
) -> dict[str, Server]:
    """The servers of this run, by name (not started); `max_offset` overrides the
    service's MAX_OFFSET (and the baseline's mirror of it)."""
    env = {"DATABASE_URL": args.database_url, "SECRET_KEY": secret}
    service_env = env | {
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "WARNING",
        "ACCESS_TOKEN_EXPIRE_MINUTES": "240",
        "METRICS": "off",
        "ACCESS_LOG": "false",
        "LOG_FORMAT": "text",
    }
    if max_offset is not None:
        service_env["MAX_OFFSET"] = str(max_offset)
    workers = args.workers
    lineup = {"service": Server("service", SERVICE_APP, service_env, workers)}
    if not args.skip_observed:
        # The same build with metrics and JSON logs on: one JSON line per request (into
        # the server's log file), /metrics, and prometheus-client's multiprocess mode
        # (what `catalog serve --workers N` runs: values in memory-mapped files).
        metrics_dir = work_dir / "metrics"
        metrics_dir.mkdir()
        observed_env = service_env | {
            "LOG_LEVEL": "INFO",
            "METRICS": "on",
            "ACCESS_LOG": "true",
            "LOG_FORMAT": "json",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        lineup[report.OBSERVED] = Server(report.OBSERVED, SERVICE_APP, observed_env, workers)
    if bouncer is not None:
        pooled_env = service_env | {
            "DATABASE_URL": bouncer.url(make_url(args.database_url).database or "postgres"),
            "DATABASE_POOLER": "transaction",
        }
        lineup[report.VIA_PGBOUNCER] = Server(
            report.VIA_PGBOUNCER, SERVICE_APP, pooled_env, workers, charged_pids=(bouncer.pid,)
        )
    if not args.skip_baseline:
        # The baseline's pool holds as many connections as the service's may.
        keeps, most = pool_bounds(args.database_url, secret)
        baseline_env = env | {
            "BASELINE_POOL_MIN": str(keeps),
            "BASELINE_POOL_MAX": str(most),
            "BASELINE_SERVER_SETTINGS": orjson.dumps(args.server_settings).decode(),
        }
        # The same documented maximum offset as the service's (issue 14), if it has one.
        if max_offset is None:
            max_offset = rules_from_settings(args.database_url, secret).max_offset
        if max_offset is not None:
            baseline_env["BASELINE_MAX_OFFSET"] = str(max_offset)
        lineup["baseline"] = Server("baseline", BASELINE_APP, baseline_env, workers)
        if not args.skip_by_hand:
            # FastAPI by hand (issue 15): the same pool, SQL and JSON as the baseline.
            lineup[report.BY_HAND] = Server(report.BY_HAND, BY_HAND_APP, baseline_env, workers)
    for server in lineup.values():
        server.server = getattr(args, "server", "uvicorn")
    return lineup


def cursor_kind(server_name: str) -> str:
    """Whose cursors a server issues: the service's (however deployed) or the baseline's
    (fastapi-by-hand signs them as the baseline does)."""
    return "baseline" if server_name in ("baseline", report.BY_HAND) else "service"


def deep_cursor_paths(
    args: argparse.Namespace, secret: str, work_dir: Path, ds: dataset.Dataset
) -> dict[str, str]:
    """deep_cursor's next links, from servers started for the purpose.

    The link comes from the page at offset depth - 50, which the measured servers may not
    answer: a documented maximum offset (issue 14) refuses it, and at 10M items it takes
    longer than the statement and request timeouts. A service and a baseline with those
    lifted hand out the links; cursors are signed with the run's secret, so the measured
    servers accept them. Empty when deep_cursor is not in the run.
    """
    if not any(s.name == "deep_cursor" for s in args.scenarios):
        return {}
    lifted = {**args.server_settings, "statement_timeout": "0"}
    mint_args = argparse.Namespace(
        **{**vars(args), "skip_observed": True, "via_pgbouncer": False, "server_settings": lifted}
    )
    mint_dir = work_dir / "mint"
    mint_dir.mkdir()
    mint = servers(mint_args, secret, mint_dir, None, max_offset=ds.spec.items)
    for server in mint.values():
        server.env |= {"DB_STATEMENT_TIMEOUT_MS": "0", "REQUEST_TIMEOUT": "600"}
    try:
        for server in mint.values():
            server.start(mint_dir)
        scenario = scenarios.BY_NAME["deep_cursor"]
        return {
            name: scenarios.resolve(scenario, ds, server.base_url).path
            for name, server in mint.items()
        }
    finally:
        for server in mint.values():
            server.stop()
