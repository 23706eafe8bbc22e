"""`catalog export` and `catalog import`: the whole catalog to and from one file.

A progress bar shows on stderr when it is a terminal; otherwise only the summary is
printed. Errors are one line, `error: line 12: price: ...`, with exit status 1.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from catalog.cli.common import RichProgress, err, fail, out
from catalog.config import get_settings
from catalog.db.engine import create_sync_engine
from catalog.seed import analyze
from catalog.transfer import Format, LineError, export_catalog, import_catalog

_WRITE_BUFFER = 1 << 20


@contextmanager
def _bar(amount: ProgressColumn) -> Iterator[RichProgress]:
    """A rich progress bar on a terminal; nothing at all otherwise (logs, pipes, CI)."""
    columns = (TextColumn("{task.description:>8}"), BarColumn(), amount, TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as progress:
        yield RichProgress(progress)


@contextmanager
def _output(path: Path | None) -> Iterator[BinaryIO]:
    """stdout, or a file that appears only once complete, readable by its owner alone."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    # mkstemp creates the file with mode 0600 (it holds password hashes) next to its final
    # name, so the rename is atomic: a failed export leaves the previous file, or none.
    descriptor, partial = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
    )
    try:
        with os.fdopen(descriptor, "wb", buffering=_WRITE_BUFFER) as stream:
            yield stream
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


def export_command(
    file_format: Annotated[
        Format, typer.Option("--format", "-f", help="jsonl (JSON Lines) or csv.")
    ] = Format.JSONL,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            help="Write to this file (created only once complete, mode 0600) \\[default: stdout].",
            show_default=False,
        ),
    ] = None,
    passwords: Annotated[
        bool,
        typer.Option(
            "--passwords/--no-passwords",
            help="Include the password hashes, so restored users keep their logins. "
            "Without them, users new to the importing database get an unusable password.",
        ),
    ] = True,
) -> None:
    """Write every user, tag and item to one file (sensitive: emails and password hashes)."""
    engine = create_sync_engine(get_settings())
    started = time.perf_counter()
    try:
        with _bar(MofNCompleteColumn()) as progress, _output(output) as stream:
            report = export_catalog(
                engine, stream, file_format=file_format, passwords=passwords, progress=progress
            )
    except OSError as error:
        fail(f"cannot write {output or 'to stdout'}: {error.strerror or error}")
    finally:
        engine.dispose()
    err.print(
        f"Exported {report.users:,} users, {report.tags:,} tags and {report.items:,} items "
        f"to {output or 'stdout'} ({file_format}) in {time.perf_counter() - started:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


@contextmanager
def _input(path: Path) -> Iterator[tuple[BinaryIO, int | None]]:
    """The file (or stdin for `-`) and its size when it has one (for the progress bar)."""
    if str(path) == "-":
        yield sys.stdin.buffer, None
        return
    with path.open("rb") as stream:
        status = os.fstat(stream.fileno())
        yield stream, status.st_size if stat.S_ISREG(status.st_mode) else None


def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            dir_okay=False,
            help="A file written by `catalog export` (either format), or - for stdin.",
            show_default=False,
        ),
    ],
) -> None:
    """Add or update the file's users, tags and items; all or nothing, safe to repeat."""
    engine = create_sync_engine(get_settings())
    started = time.perf_counter()
    try:
        with _bar(TaskProgressColumn()) as progress, _input(file) as (stream, size):
            report = import_catalog(engine, stream, progress=progress, size=size)
        with engine.connect() as connection:
            analyze(connection)
            connection.commit()
    except LineError as error:
        fail(f"{error} (nothing was imported)")
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror or error}")
    finally:
        engine.dispose()

    elapsed = time.perf_counter() - started
    table = Table(
        "records", "read", "rows inserted or changed", title=f"Imported in {elapsed:.1f} s"
    )
    written = report.written
    table.add_row("users", f"{report.users:,}", f"{written.users:,}")
    table.add_row("tags", f"{report.tags:,}", f"{written.tags:,}")
    table.add_row("items", f"{report.items:,}", f"{written.items:,}")
    table.add_row("item tags", "", f"{written.item_tags:,}")
    out.print(table)
