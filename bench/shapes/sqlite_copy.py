"""The benchmark's dataset as an SQLite file: the same rows, from the same seeded generator.

`catalog seed` is deterministic (the same seed, counts and `as_of` give the same rows on a
fresh database), so the SQLite copy is seeded with the PostgreSQL dataset's spec rather than
copied row by row. A marker file next to the database names the spec it was built from; a
mismatch rebuilds it (into a temporary file, renamed when complete). A reused copy gets the
new migrations (`catalog db upgrade`) and `ANALYZE`.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import orjson

from bench.dataset import CATALOG, REPO, DatasetSpec

DATA_DIR = REPO / "bench" / "data"
MARKER_VERSION = 1


def default_path(spec: DatasetSpec) -> Path:
    """Where the copy of a dataset size lives by default (bench/data/, git-ignored)."""
    return DATA_DIR / f"catalog_bench_{spec.items}.db"


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def _log(message: str) -> None:
    print(f"[shapes] {message}", file=sys.stderr, flush=True)


def _catalog(path: Path, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": url(path)}
    subprocess.run([CATALOG, *args], env=env, cwd=REPO, check=True, stdout=sys.stderr)


def _marker(spec: DatasetSpec) -> bytes:
    return orjson.dumps({"version": MARKER_VERSION, **asdict(spec)})


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + ".spec.json")


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".spec.json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def ensure(path: Path, spec: DatasetSpec, *, rebuild: bool = False) -> None:
    """An SQLite database at `path` holding `spec`'s rows, migrated to head."""
    marker = _marker_path(path)
    if not rebuild and path.exists() and marker.exists() and marker.read_bytes() == _marker(spec):
        _log(f"reusing {path} (--rebuild to rebuild it)")
        _catalog(path, "db", "upgrade")
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("ANALYZE")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(path.name + ".building")
    _remove(building)
    _log(f"building {path}: {spec}")
    started = time.perf_counter()
    _catalog(building, "db", "upgrade")
    _catalog(
        building,
        "seed",
        f"--users={spec.users}",
        f"--items={spec.items}",
        f"--tags={spec.tags}",
        f"--seed={spec.seed}",
        f"--as-of={spec.as_of}",
    )
    with closing(sqlite3.connect(building)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")
    _remove(path)
    building.rename(path)
    marker.write_bytes(_marker(spec))
    size = path.stat().st_size / 2**20
    _log(f"built {path} in {time.perf_counter() - started:.0f} s ({size:,.0f} MiB)")
