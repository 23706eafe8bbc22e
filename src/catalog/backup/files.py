"""Writing a backup file so that only a complete, durable file ever has the final name."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class BackupResult:
    """What a backup or restore did: the file, its size and how long it took."""

    path: Path
    size: int
    seconds: float


def default_name(database: str, extension: str) -> str:
    """`catalog-<database>-<UTC time>.<extension>`: sorts by time, never collides in practice."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in database) or "db"
    return f"catalog-{safe}-{stamp}.{extension}"


def target_path(to: Path | None, default_dir: Path, database: str, extension: str) -> Path:
    """`to` itself, or a new name inside `to` (or `default_dir`) when it is a directory."""
    if to is None or to.is_dir() or str(to).endswith(os.sep):
        directory = to or default_dir
        return directory / default_name(database, extension)
    return to


def fsync_path(path: Path) -> None:
    """Flush a file's (or a directory's) contents to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success it becomes `final`, durably.

    The temporary name is hidden and ends in `.partial`, so a backup killed half-way (or
    stopped by a full disk) never leaves a file that looks complete; on any error it is
    removed. Success: fsync the file, rename it (atomic within the directory), fsync the
    directory so the rename itself survives a crash. An existing `final` is never
    overwritten.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        raise FileExistsError(f"{final} already exists; choose another --to")
    partial = final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}{PARTIAL_SUFFIX}")
    try:
        yield partial
        fsync_path(partial)
        os.link(partial, final)  # like rename, but fails instead of replacing `final`
        partial.unlink()
        fsync_path(final.parent)
    finally:
        partial.unlink(missing_ok=True)
