"""`python -m deploy.cluster` (`make cluster`): the reference topology on this machine, to try.

etcd + 3 Patroni nodes + HAProxy + PgBouncer (transaction mode) in front of HAProxy's write
port, with a `catalog` database. Prints the URLs, then stays in the foreground reporting
leader changes until Ctrl-C (or SIGTERM), and removes everything. `--with-service` also
migrates the database and serves the API against it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

import httpx
import psycopg

from deploy.patroni import DCS_SETTINGS, PatroniCluster
from deploy.pgbackrest import BackRestRepository, with_archiving
from deploy.pgbouncer import DEFAULT_IGNORED_STARTUP_PARAMETERS, PgBouncer
from deploy.ports import HOST
from deploy.procs import Process, private_dir, remove_dir

REPO = Path(__file__).resolve().parents[1]
CATALOG_BIN = str(Path(sys.executable).with_name("catalog"))
DATABASE = "catalog"
# The service asks for these at connect time (asyncpg server_settings). PgBouncer refuses
# unknown startup parameters, so it must drop them, and the database carries them instead.
SERVICE_SETTINGS = {"jit": "off", "max_parallel_workers_per_gather": "0"}


def _log(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__)
    parser.add_argument("--with-service", action="store_true", help="also run `catalog serve`")
    parser.add_argument("--service-port", type=int, default=8000, help="the API's port")
    parser.add_argument(
        "--no-backups",
        action="store_true",
        help="skip pgBackRest (continuous WAL archiving and a full base backup)",
    )
    parser.add_argument(
        "--service-via",
        choices=["haproxy", "pgbouncer"],
        default="haproxy",
        help="what the service connects to (PgBouncer's transaction mode needs the service's "
        "asyncpg statement cache off; see deploy/README.md)",
    )
    return parser.parse_args(argv)


def _create_database(cluster: PatroniCluster) -> None:
    """CREATE DATABASE catalog on the leader, carrying the service's session settings."""
    with psycopg.connect(cluster.write_url(), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
        for name, value in SERVICE_SETTINGS.items():
            conn.execute(f'ALTER DATABASE "{DATABASE}" SET {name} = {value}')


def _start_service(stack: ExitStack, database_url: str, port: int) -> str:
    """Migrate the database, start `catalog serve` on `port`, wait for /health; its URL."""
    env = {"DATABASE_URL": database_url}
    _log("migrating: catalog db upgrade")
    subprocess.run(
        [CATALOG_BIN, "db", "upgrade"], env=os.environ | env, cwd=REPO, check=True, timeout=120
    )
    log_dir = private_dir("service")
    stack.callback(remove_dir, log_dir)
    service = Process(
        "catalog serve",
        [CATALOG_BIN, "serve", "--host", HOST, "--port", str(port)],
        log_dir / "service.log",
        env=env,
        cwd=REPO,
        as_service_user=False,
    )
    service.start()
    stack.callback(service.stop)
    base_url = f"http://{HOST}:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    service.wait_ready(healthy, timeout=60, what="/health/ready")
    return base_url


def _repository(stack: ExitStack) -> BackRestRepository:
    repository = BackRestRepository()
    stack.callback(repository.close)
    return repository


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch(cluster: PatroniCluster) -> None:
    """Report leader changes until interrupted."""
    leader = None
    while True:
        current = cluster.leader()
        name = current.name if current else None
        if name != leader:
            _log(f"leader: {name or 'none (election in progress)'}")
            leader = name
        time.sleep(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the topology, print how to reach it, wait for Ctrl-C, clean up."""
    args = parse_args(argv)
    # Explicit for SIGINT too: a shell starting us in the background makes Python ignore it.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupt)
    with ExitStack() as stack:
        try:
            _log("starting etcd, 3 Patroni nodes and HAProxy...")
            repository = None if args.no_backups else _repository(stack)
            dcs = DCS_SETTINGS if repository is None else with_archiving(DCS_SETTINGS, repository)
            cluster = PatroniCluster(dcs_settings=dcs)
            if repository is not None:
                repository.attach([(n.data_dir, n.pg_port, n.dir) for n in cluster.nodes])
            stack.enter_context(cluster)
            _create_database(cluster)
            if repository is not None:
                _log("pgBackRest: creating the stanza and a full base backup...")
                repository.create_stanza()
                repository.backup("full")
            bouncer = stack.enter_context(
                PgBouncer(
                    cluster.haproxy.write_port,
                    pool_mode="transaction",
                    ignore_startup_parameters=(
                        *DEFAULT_IGNORED_STARTUP_PARAMETERS,
                        *SERVICE_SETTINGS,
                    ),
                )
            )
            lines = [
                f"DATABASE_URL={bouncer.url(DATABASE)}   (PgBouncer, transaction mode)",
                f"direct to the leader:   {cluster.write_url(DATABASE)}   (HAProxy write port)",
                f"read-only replicas:     {cluster.read_url(DATABASE)}   (HAProxy read port)",
                f"HAProxy stats:          {cluster.haproxy.stats_url}",
                f"PgBouncer console:      psql {bouncer.url('pgbouncer')} -c 'SHOW POOLS'",
                f"Patroni REST APIs:      {', '.join(n.api_url for n in cluster.nodes)}",
                f"patronictl:             patronictl -c {cluster.nodes[0].config_path} list",
                f"configs and logs:       {cluster.dir}, {bouncer.dir}",
            ]
            if repository is not None:
                config = f"--config={repository.config_path} --stanza=catalog"
                lines += [
                    f"WAL archive + backups:  {repository.dir / 'repo'}   (pgBackRest)",
                    f"  list (as postgres):   pgbackrest {config} info",
                    f"  new base backup:      pgbackrest {config} backup",
                ]
            if args.with_service:
                url = bouncer.url(DATABASE)
                if args.service_via == "haproxy":
                    url = cluster.write_url(DATABASE)
                lines.append(
                    f"API:                    {_start_service(stack, url, args.service_port)}"
                )
            print("\n".join(lines), flush=True)
            _log("try: kill -9 the leader's postmaster (see `patronictl list`); Ctrl-C stops")
            _watch(cluster)
        except KeyboardInterrupt:
            _log("stopping and removing everything...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
