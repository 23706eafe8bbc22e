"""`catalog seed`: demo data, bulk-loaded with a progress bar."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.exc import IntegrityError

from catalog.cli.common import USAGE_ERROR, RichProgress, err, fail, out
from catalog.config import get_settings
from catalog.db.database import SyncDatabase
from catalog.seed import DEFAULT_BATCH_SIZE, SeedError, SeedOptions, analyze, seed_database


def seed(
    users: Annotated[int, typer.Option(min=0, help="Users to create.")] = 100,
    items: Annotated[int, typer.Option(min=0, help="Items to create.")] = 10_000,
    tags: Annotated[int, typer.Option(min=0, help="Tag names the items draw from.")] = 50,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same rows.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per batch.")] = DEFAULT_BATCH_SIZE,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
            help="End of the year the created_at values spread over, in UTC "
            "\\[default: today 00:00].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Fill the database with demo users, tags and items (0..3 tags each)."""
    settings = get_settings()
    try:
        options = SeedOptions(
            users=users,
            items=items,
            tags=tags,
            seed=seed,
            batch_size=batch_size,
            as_of=as_of.replace(tzinfo=UTC) if as_of is not None else None,
        )
    except SeedError as error:
        fail(str(error), USAGE_ERROR)
    database = SyncDatabase.from_settings(settings)
    started = time.perf_counter()
    try:
        columns = (
            TextColumn("{task.description:>10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err) as bar, database.session_scope() as session:
            report = seed_database(session, options, progress=RichProgress(bar))
        with database.engine.connect() as connection:
            analyze(connection)
            connection.commit()
    except SeedError as error:
        fail(str(error))
    except IntegrityError as error:
        fail(f"could not insert the demo data: {str(error.orig).splitlines()[0]}")
    finally:
        database.dispose()
    elapsed = time.perf_counter() - started

    table = Table("inserted", "rows", title=f"Seeded in {elapsed:.1f} s (seed {seed})")
    table.add_row("users", f"{report.users:,}")
    table.add_row("items", f"{report.items:,}")
    table.add_row("item tags", f"{report.item_tags:,}")
    table.add_row("tags (new / used)", f"{report.tags_created:,} / {report.tags_used:,}")
    out.print(table)
    if report.users:
        out.print(f"Every seeded user's password is: [bold]{report.password}[/]")
