"""`export`: the whole catalog, streamed from one consistent snapshot into an export file.

Users come first (by email), then tags (by name), then items (by id), each sorted by its
key in code-point order on both databases, so the same data always gives the same bytes.
Rows are streamed in batches (a server-side cursor on PostgreSQL, `fetchmany` on SQLite):
memory stays flat whatever the size of the catalog.

The three queries read one snapshot, so an item never names an owner the file lacks: a
REPEATABLE READ, READ ONLY transaction on PostgreSQL; on SQLite a deferred read transaction
(WAL), which, unlike the engine's usual BEGIN IMMEDIATE, does not hold writers back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import Engine, func, null, select
from sqlalchemy.sql import Select

from catalog.db.bulk import read_snapshot
from catalog.db.types import string_agg_list
from catalog.models import Item, Tag, User, item_tags
from catalog.progress import NoProgress, ProgressSink
from catalog.transfer.formats import WRITERS, Format
from catalog.transfer.records import FIELDS, Kind, plain_fields

DEFAULT_BATCH_SIZE = 5_000


@dataclass(frozen=True)
class ExportReport:
    """Records written per kind."""

    users: int
    tags: int
    items: int


def _queries(*, passwords: bool) -> dict[Kind, Select[Any]]:
    """One query per kind, its columns named and ordered by `records.FIELDS`."""
    # Each item's tag names, aggregated per item in item id order and merge-joined to the
    # items: a correlated subquery per item took half as long again on PostgreSQL.
    tag_names = (
        select(item_tags.c.item_id, string_agg_list(Tag.name).label("names"))
        .join(Tag, Tag.id == item_tags.c.tag_id)
        .group_by(item_tags.c.item_id)
        .subquery()
    )
    # Fields that are not a column of the record's own table.
    other: dict[str, Any] = {
        "owner": User.email,
        "tags": tag_names.c.names,
        "hashed_password": User.hashed_password if passwords else null(),
    }

    def columns(kind: Kind, model: type[Any]) -> list[Any]:
        return [other[name] if name in other else getattr(model, name) for name in FIELDS[kind]]

    return {
        Kind.USER: select(*columns(Kind.USER, User)).order_by(User.email),
        Kind.TAG: select(*columns(Kind.TAG, Tag)).order_by(Tag.name),
        Kind.ITEM: select(*columns(Kind.ITEM, Item))
        .join(User, User.id == Item.owner_id)
        .outerjoin(tag_names, tag_names.c.item_id == Item.id)
        .order_by(Item.id),
    }


def export_catalog(
    engine: Engine,
    stream: BinaryIO,
    *,
    file_format: Format = Format.JSONL,
    passwords: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressSink | None = None,
) -> ExportReport:
    """Write every user, tag and item to `stream` in `file_format`.

    With `passwords=False` the users' password hashes are left out (written as null).
    """
    progress = progress or NoProgress()
    queries = _queries(passwords=passwords)
    written = dict.fromkeys(Kind, 0)
    with read_snapshot(engine) as connection:
        total = sum(
            connection.scalar(select(func.count()).select_from(table)) or 0
            for table in (User, Tag, Item)
        )
        progress.start("export", total)
        writer = WRITERS[file_format](stream)
        for kind, query in queries.items():
            result = connection.execution_options(yield_per=batch_size).execute(query)
            for rows in result.partitions():
                for row in rows:
                    writer.record(kind, plain_fields(kind, row))
                written[kind] += len(rows)
                progress.advance("export", len(rows))
        writer.finish()
    return ExportReport(users=written[Kind.USER], tags=written[Kind.TAG], items=written[Kind.ITEM])
