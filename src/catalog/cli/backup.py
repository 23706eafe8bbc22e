"""`catalog db backup` and `catalog db restore` (the work is done in catalog.backup)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from catalog.backup import BackupError, backup_database, restore_database
from catalog.cli.common import RichProgress, err, fail, out
from catalog.config import get_settings


@contextmanager
def progress_bars() -> Iterator[RichProgress]:
    """A progress bar per phase on stderr (hidden when it is not a terminal)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        yield RichProgress(progress)


def backup_command(
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="File to write, or a directory for a new timestamped name "
            "(default: MIGRATION_BACKUP_DIR).",
        ),
    ] = None,
) -> None:
    """Back up the whole database to one file (PostgreSQL: pg_dump; SQLite: its backup API)."""
    settings = get_settings()
    try:
        with progress_bars() as progress:
            result = backup_database(
                settings.database_url,
                to=to,
                default_dir=settings.migration_backup_dir,
                progress=progress,
            )
    except BackupError as error:
        fail(error.detail)
    err.print(
        f"[green]Backed up {result.size:,} bytes in {result.seconds:.1f} s.[/]", highlight=False
    )
    out.print(str(result.path), highlight=False, soft_wrap=True)


def restore_command(
    path: Annotated[Path, typer.Argument(help="A file written by `catalog db backup`.")],
    into: Annotated[
        str | None,
        typer.Option(
            "--into",
            help="Database URL to restore into (default: DATABASE_URL); "
            "a PostgreSQL database that does not exist is created.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the contents of a non-empty database.")
    ] = False,
    jobs: Annotated[
        int | None, typer.Option(min=1, help="PostgreSQL: parallel pg_restore jobs.")
    ] = None,
) -> None:
    """Restore a backup into an empty database (or, with --force, over a non-empty one)."""
    target = into or get_settings().database_url
    try:
        with progress_bars() as progress:
            result = restore_database(path, target, force=force, jobs=jobs, progress=progress)
    except BackupError as error:
        fail(error.detail)
    err.print(
        f"[green]Restored {result.path} ({result.size:,} bytes) in {result.seconds:.1f} s.[/]",
        highlight=False,
        soft_wrap=True,
    )
