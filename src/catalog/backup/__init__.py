"""`catalog db backup` / `catalog db restore`: whole-database copies, safe to write and read.

- PostgreSQL: `pg_dump` custom format (one snapshot), restored by `pg_restore` in parallel.
- SQLite: the online backup API inside one read transaction (a snapshot while the service
  writes), restored by the same API as one write transaction on the target.

Both write through `files.atomic_output` (a `.partial` name, fsync, then the final name),
verify a file completely before they restore it, and refuse to replace a non-empty
database unless asked to. A restore marks its target until it is done (`marker`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import URL

from catalog.backup import sqlite
from catalog.backup.files import BackupResult, atomic_output, target_path
from catalog.backup.marker import (
    MARKER_TABLE,
    BackupError,
    RestoreIncompleteError,
    refuse_incomplete_restore,
    restore_incomplete,
)
from catalog.db.urls import resolve_urls
from catalog.progress import NoProgress, ProgressSink

__all__ = [
    "MARKER_TABLE",
    "BackupError",
    "BackupResult",
    "RestoreIncompleteError",
    "backup_database",
    "refuse_incomplete_restore",
    "restore_database",
    "restore_incomplete",
]

EXTENSIONS = {"postgresql": "dump", "sqlite": "sqlite3"}


def _sync_url(database_url: str) -> URL:
    try:
        return resolve_urls(database_url).sync_url
    except ValueError as error:
        raise BackupError(str(error)) from None


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:" or url.database.startswith("file::memory"):
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database)


def backup_database(
    database_url: str,
    *,
    to: Path | None = None,
    default_dir: Path = Path("backups"),
    progress: ProgressSink | None = None,
) -> BackupResult:
    """Back up the database at `database_url` to `to` (a file, or a directory for a new name)."""
    url = _sync_url(database_url)
    backend = url.get_backend_name()
    name = Path(url.database or "db").stem
    final = target_path(to, default_dir, name, EXTENSIONS[backend])
    started = time.monotonic()
    try:
        with atomic_output(final) as partial:
            _BACKUPS[backend](url, partial, progress)
    except OSError as error:
        raise BackupError(f"cannot write {final}: {error.strerror or error}") from None
    except Exception as error:
        if isinstance(error, BackupError):
            raise
        raise BackupError(f"backup failed, nothing was written: {error}") from None
    return BackupResult(final, final.stat().st_size, time.monotonic() - started)


def restore_database(
    source: Path,
    database_url: str,
    *,
    force: bool = False,
    jobs: int | None = None,
    progress: ProgressSink | None = None,
) -> BackupResult:
    """Restore the backup file `source` into the database at `database_url`.

    Verifies the whole file first (a damaged or foreign file restores nothing) and
    refuses a target that has tables unless `force`.
    """
    progress = progress or NoProgress()
    url = _sync_url(database_url)
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    started = time.monotonic()
    _RESTORES[url.get_backend_name()](source, url, force, jobs, progress)
    return BackupResult(source, source.stat().st_size, time.monotonic() - started)


def _backup_sqlite(url: URL, partial: Path, progress: ProgressSink | None) -> None:
    sqlite.backup(_sqlite_path(url), partial, progress)


def _restore_sqlite(
    source: Path, url: URL, force: bool, jobs: int | None, progress: ProgressSink
) -> None:
    path = _sqlite_path(url)
    sqlite.verify(source)
    _refuse_non_empty(sqlite.table_count(path), str(path), force)
    try:
        sqlite.restore(source, path, progress)
    except Exception as error:
        raise BackupError(
            f"restore failed: {error}. The database is marked unusable ({MARKER_TABLE}) "
            "unless it was never changed; restore again with --force"
        ) from None


def _backup_postgres(url: URL, partial: Path, progress: ProgressSink | None) -> None:
    from catalog.backup import postgres  # psycopg: see `_restore_postgres`

    postgres.backup(url, partial, progress)


def _restore_postgres(
    source: Path, url: URL, force: bool, jobs: int | None, progress: ProgressSink
) -> None:
    # Imported here, not at the top: every API worker imports this package (the restore
    # marker check) and would otherwise load psycopg, which it never uses (~8 MiB each).
    from catalog.backup import postgres

    major = postgres.server_major(url)
    entries = postgres.verify(source, major)
    _refuse_non_empty(postgres.table_count(url) or 0, f"database {url.database}", force)
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    postgres.restore(source, url, major=major, entries=entries, jobs=jobs, progress=progress)


_BACKUPS: dict[str, Callable[[URL, Path, ProgressSink | None], None]] = {
    "postgresql": _backup_postgres,
    "sqlite": _backup_sqlite,
}
_RESTORES: dict[str, Callable[[Path, URL, bool, int | None, ProgressSink], None]] = {
    "postgresql": _restore_postgres,
    "sqlite": _restore_sqlite,
}


def _refuse_non_empty(tables: int, where: str, force: bool) -> None:
    if tables and not force:
        raise BackupError(
            f"{where} is not empty ({tables} tables); restoring would replace all of it. "
            "Pass --force to do that"
        )
