"""SQLite: backups with the online backup API, restores as one transaction on the target."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from catalog.backup.marker import MARKER_TABLE, BackupError, RestoreIncompleteError
from catalog.progress import NoProgress, ProgressSink

MAGIC = b"SQLite format 3\x00"
# Pages copied per step: small enough for a lively progress bar, large enough to be cheap.
STEP_PAGES = 1024
# The tables every Catalog database has, whatever its revision.
CATALOG_TABLES = frozenset({"alembic_version", "users", "items", "tags", "item_tags"})


def _tables(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(name) for (name,) in rows if not str(name).startswith("sqlite_")}


def _copy(
    source: sqlite3.Connection,
    target: sqlite3.Connection,
    phase: str,
    progress: ProgressSink,
) -> None:
    started = False
    done_pages = 0

    def report(status: int, remaining: int, total: int) -> None:
        nonlocal started, done_pages
        if not started:
            progress.start(phase, total)
            started = True
        copied = total - remaining
        progress.advance(phase, copied - done_pages)
        done_pages = copied

    source.backup(target, pages=STEP_PAGES, progress=report)


def backup(path: Path, partial: Path, progress: ProgressSink | None = None) -> None:
    """Copy the live database at `path` to `partial`, as of one moment.

    The copy runs inside one read transaction on the source: in WAL mode the service
    keeps writing meanwhile, the copy sees none of it (a consistent snapshot as of the
    start), and the backup never restarts because of those writes.
    """
    progress = progress or NoProgress()
    if not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    with (
        closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as source,
        closing(sqlite3.connect(partial, isolation_level=None)) as target,
    ):
        source.execute("BEGIN")
        tables = _tables(source)  # the first read: the snapshot starts here
        if MARKER_TABLE in tables:
            raise RestoreIncompleteError(str(path))
        _copy(source, target, "backup", progress)
        source.execute("COMMIT")
        # A self-contained file: no -wal beside it, readable without write access.
        target.execute("PRAGMA journal_mode = DELETE")
        check = target.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise BackupError(f"the copy failed its integrity check: {check}")


def verify(path: Path) -> None:
    """Raise BackupError unless `path` is an intact SQLite backup of a Catalog database."""
    try:
        with path.open("rb") as file:
            head = file.read(len(MAGIC))
    except OSError as error:
        raise BackupError(f"cannot read {path}: {error.strerror}") from None
    if head.startswith(b"PGDMP"):
        raise BackupError(f"{path} is a PostgreSQL backup; the target database is SQLite")
    if head != MAGIC:
        raise BackupError(f"{path} is not a Catalog backup (not a SQLite database file)")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as backup_file:
            problems = [row[0] for row in backup_file.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(
                    f"{path} is damaged (truncated or corrupt): {'; '.join(problems[:3])}"
                )
            tables = _tables(backup_file)
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is damaged (truncated or corrupt): {error}") from None
    if MARKER_TABLE in tables:
        raise BackupError(f"{path} is a copy of an unfinished restore; it cannot be restored")
    missing = CATALOG_TABLES - tables
    if missing:
        raise BackupError(
            f"{path} is not a Catalog backup: it has no {', '.join(sorted(missing))} table"
        )


def table_count(path: Path) -> int:
    """How many tables the database at `path` has (0: empty or absent)."""
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as connection:
        return len(_tables(connection) - {MARKER_TABLE})


def restore(source: Path, path: Path, progress: ProgressSink | None = None) -> None:
    """Replace the database at `path` with the backup `source` (already verified).

    The mark goes in first, committed. The backup API then rewrites every page of the
    target in one write transaction, which replaces the mark along with everything
    else: it commits all of the backup or, interrupted, rolls back to the marked target.
    """
    progress = progress or NoProgress()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as backup_file,
        closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as target,
    ):
        target.execute(f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (started TEXT)")
        _copy(backup_file, target, "restore", progress)
        target.execute("PRAGMA journal_mode = WAL")  # as the service runs it
