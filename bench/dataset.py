"""The benchmark's dataset: built once with `catalog seed`, reused while it matches.

The database carries a marker (its COMMENT) naming the spec it was built from and the
request parameters chosen from its data (a tag, a price range, a search term). A run reuses
the database when the marker matches the spec and the row counts match the marker;
`--rebuild` (or any mismatch) drops and rebuilds it. Rows the benchmark writes (POSTed
items) are deleted again, so every run starts from the same data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
CATALOG = str(Path(sys.executable).with_name("catalog"))
MARKER_PREFIX = "catalog-bench "
# Bump when the marker's content or the way parameters are chosen changes.
MARKER_VERSION = 1
SUPERUSER_EMAIL = "bench-superuser@example.com"
SUPERUSER_PASSWORD = "bench-superuser-password"
# `q` should match about this share of the items: a real search, not a needle or a scan.
SEARCH_SHARE = 0.005


@dataclass(frozen=True)
class DatasetSpec:
    """What `catalog seed` is asked for. `as_of` pins the created_at window (reproducible)."""

    users: int = 1_000
    items: int = 1_000_000
    tags: int = 100
    seed: int = 42
    as_of: str = "2025-01-01"


@dataclass(frozen=True)
class Dataset:
    """A built dataset and the request parameters chosen from it."""

    url: str
    spec: DatasetSpec
    min_item_id: int
    max_item_id: int
    users: int
    item_tags: int
    tag: str  # a tag of median popularity, for the filtered page
    post_tags: tuple[str, ...]  # existing tags, so POSTs create none
    min_price: str
    max_price: str
    q: str
    q_matches: int
    superuser_email: str = SUPERUSER_EMAIL
    superuser_password: str = SUPERUSER_PASSWORD

    def marker(self) -> str:
        data = asdict(self)
        del data["url"]
        return MARKER_PREFIX + orjson.dumps({"version": MARKER_VERSION, **data}).decode()


def conninfo(url: str, database: str | None = None) -> str:
    """A libpq connection string for `url` (any SQLAlchemy driver suffix dropped)."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _catalog(url: str, *args: str, stdin: str | None = None) -> None:
    """Run the `catalog` CLI against `url`; its output goes to our stderr."""
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [CATALOG, *args],
        env=env,
        cwd=REPO,
        input=stdin,
        text=True,
        check=True,
        stdout=sys.stderr,
    )


def _read_marker(url: str) -> dict[str, Any] | None:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname = current_database()"
        ).fetchone()
    comment = row[0] if row else None
    if not comment or not comment.startswith(MARKER_PREFIX):
        return None
    data: dict[str, Any] = orjson.loads(comment[len(MARKER_PREFIX) :])
    return data


def _database_exists(url: str) -> bool:
    name = make_url(url).database
    with psycopg.connect(conninfo(url, "postgres"), autocommit=True) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def _recreate_database(url: str) -> None:
    name = make_url(url).database
    assert name, "the benchmark database URL must name a database"
    with psycopg.connect(conninfo(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _counts(conn: psycopg.Connection[Any]) -> tuple[int, int, int, int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM items),"
        " (SELECT count(*) FROM item_tags), (SELECT min(id) FROM items),"
        " (SELECT max(id) FROM items)"
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3] or 0, row[4] or 0


def _choose_search_term(conn: psycopg.Connection[Any], items: int) -> tuple[str, int]:
    """A 3-4 letter substring of item names matching about SEARCH_SHARE of the items."""
    sample = [
        name.lower()
        for (name,) in conn.execute("SELECT name FROM items WHERE id % 50 = 0 ORDER BY id")
    ]
    grams: Counter[str] = Counter()
    for name in sample:
        grams.update(
            {
                name[i : i + n]
                for n in (3, 4)
                for i in range(len(name) - n + 1)
                if name[i : i + n].isalpha()
            }
        )
    wanted = SEARCH_SHARE * len(sample)
    term = min(sorted(grams), key=lambda g: abs(grams[g] - wanted))
    row = conn.execute("SELECT count(*) FROM items WHERE name ILIKE %s", (f"%{term}%",)).fetchone()
    assert row is not None
    return term, row[0]


def _describe(url: str, spec: DatasetSpec) -> Dataset:
    """Measure the built dataset and choose the request parameters from its data."""
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        users, items, links, min_id, max_id = _counts(conn)
        tags = [
            name
            for (name,) in conn.execute(
                "SELECT t.name FROM tags t JOIN item_tags it ON it.tag_id = t.id"
                " GROUP BY t.name ORDER BY count(*), t.name"
            )
        ]
        if len(tags) < 2 or not items:
            raise SystemExit("bench: the seeded dataset has no tagged items")
        median = len(tags) // 2
        row = conn.execute(
            "SELECT percentile_disc(0.25) WITHIN GROUP (ORDER BY price),"
            " percentile_disc(0.75) WITHIN GROUP (ORDER BY price) FROM items"
        ).fetchone()
        assert row is not None
        q, q_matches = _choose_search_term(conn, items)
    return Dataset(
        url=url,
        spec=spec,
        min_item_id=min_id,
        max_item_id=max_id,
        users=users,
        item_tags=links,
        tag=tags[median],
        post_tags=(tags[median - 1], tags[median + 1]),
        min_price=str(int(row[0])),
        max_price=str(int(row[1]) + 1),
        q=q,
        q_matches=q_matches,
    )


def _vacuum(url: str, tables: str = "") -> None:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {tables}".strip())


def _build(url: str, spec: DatasetSpec) -> Dataset:
    _log(f"building the dataset in {make_url(url).database}: {spec}")
    started = time.perf_counter()
    _recreate_database(url)
    _catalog(url, "db", "upgrade")
    # Into empty tables, `catalog seed` sets the secondary indexes aside and rebuilds them
    # after the load (~3x cheaper than maintaining the trigram index row by row).
    _catalog(
        url,
        "seed",
        f"--users={spec.users}",
        f"--items={spec.items}",
        f"--tags={spec.tags}",
        f"--seed={spec.seed}",
        f"--as-of={spec.as_of}",
    )
    seeded = time.perf_counter() - started
    _catalog(
        url,
        "users",
        "create",
        SUPERUSER_EMAIL,
        "--superuser",
        "--password-stdin",
        stdin=SUPERUSER_PASSWORD + "\n",
    )
    _vacuum(url)
    dataset = _describe(url, spec)
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(make_url(url).database or ""), sql.Literal(dataset.marker())
            )
        )
    _log(
        f"dataset built in {time.perf_counter() - started:.1f} s"
        f" (migrate + seed {seeded:.1f} s, then superuser, VACUUM ANALYZE, parameters)"
    )
    return dataset


def _reusable(url: str, spec: DatasetSpec) -> Dataset | None:
    """The dataset described by the marker, if it matches `spec` and the data."""
    if not _database_exists(url):
        return None
    marker = _read_marker(url)
    if marker is None or marker.pop("version", None) != MARKER_VERSION:
        return None
    marker["spec"] = DatasetSpec(**marker["spec"])
    marker["post_tags"] = tuple(marker["post_tags"])
    dataset = Dataset(url=url, **marker)
    if dataset.spec != spec:
        return None
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        remove_written_rows(conn, dataset)
        users, items, links, min_id, max_id = _counts(conn)
    expected = (
        dataset.users,
        spec.items,
        dataset.item_tags,
        dataset.min_item_id,
        dataset.max_item_id,
    )
    if (users, items, links, min_id, max_id) != expected:
        _log(f"dataset counts {(users, items, links, min_id, max_id)} != marker {expected}")
        return None
    return dataset


def remove_written_rows(conn: psycopg.Connection[Any], dataset: Dataset) -> int:
    """Delete the items the benchmark created (their tag links cascade); the count deleted."""
    cursor = conn.execute("DELETE FROM items WHERE id > %s", (dataset.max_item_id,))
    return cursor.rowcount


def ensure_dataset(url: str, spec: DatasetSpec, *, rebuild: bool = False) -> Dataset:
    """The dataset at `url`: reused if it matches, (re)built otherwise; migrated to head."""
    dataset = None if rebuild else _reusable(url, spec)
    if dataset is None:
        return _build(url, spec)
    _log(f"reusing the dataset in {make_url(url).database} (--rebuild to rebuild it)")
    # New migrations (indexes...) apply to the existing data; statistics are refreshed
    # and the visibility map is cleaned after the previous run's writes.
    _catalog(url, "db", "upgrade")
    _vacuum(url, "items, item_tags, tags, users")
    return dataset


def tune(url: str) -> None:
    """`catalog db tune`: the service's planner settings stored in the database itself,
    where they reach connections made through a pooler (which forwards none of them)."""
    _catalog(url, "db", "tune")


def cleanup(dataset: Dataset) -> None:
    """Remove what the benchmark wrote, so the next run starts from the same rows."""
    with psycopg.connect(conninfo(dataset.url), autocommit=True) as conn:
        deleted = remove_written_rows(conn, dataset)
    if deleted:
        _log(f"removed {deleted} items created by the benchmark")


def settle(url: str, timeout: float = 30.0) -> int:
    """Wait until no query runs in the benchmark database; the number cancelled to get there.

    A server keeps working through its backlog after wrk stops (slow queries included), which
    would spill into the next measurement. Queries still running after `timeout` are
    cancelled (the database belongs to the benchmark).
    """
    cancelled: set[tuple[int, Any]] = set()
    started = time.monotonic()
    quiet_since: float | None = None
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        while time.monotonic() - started < timeout + 30:
            active = conn.execute(
                "SELECT pid, query_start FROM pg_stat_activity"
                " WHERE datname = current_database()"
                " AND state = 'active' AND backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
            now = time.monotonic()
            if not active:
                quiet_since = quiet_since or now
                if now - quiet_since >= 0.5:
                    break
            else:
                quiet_since = None
                if now - started > timeout:
                    for pid, query_start in active:
                        conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
                        cancelled.add((pid, query_start))
            time.sleep(0.1)
    return len(cancelled)


def server_version(url: str) -> str:
    """PostgreSQL's version number, for the report."""
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"
