"""`import`: read an export file, validate every record, merge it, all in one transaction.

The file is read as a stream, a batch at a time (memory stays flat whatever its size), and
each record is validated with the API's rules before anything of its batch is written.
The first problem stops the import with the line it is on (`LineError`); as everything
runs in one transaction, nothing of the file is then kept. Records must come in the order
an export writes them: users by email, then tags by name, then items by id, each key once.
That order lets a duplicate be caught without remembering every key read.

`merge` explains how records meet rows already in the database; importing the same file
twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from typing import Any, BinaryIO

from pydantic import ValidationError
from sqlalchemy import Engine

from catalog.progress import NoProgress, ProgressSink
from catalog.schemas import validation_message
from catalog.seed.writers import batched
from catalog.transfer.formats import RawRecord, read_records
from catalog.transfer.merge import Merger, Written
from catalog.transfer.records import MODELS, Kind, LineError, Record

DEFAULT_BATCH_SIZE = 5_000
KEYS = {Kind.USER: "email", Kind.TAG: "name", Kind.ITEM: "id"}
"""The field that identifies a record of each kind."""
_ORDER = list(Kind)
_KINDS = {kind.value: kind for kind in Kind}  # a dict lookup: Kind(name) is slower


@dataclass(frozen=True)
class ImportReport:
    """Records read per kind, and the rows they inserted or changed."""

    users: int
    tags: int
    items: int
    written: Written


def import_catalog(
    engine: Engine,
    stream: BinaryIO,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressSink | None = None,
    size: int | None = None,
) -> ImportReport:
    """Import the export file read from `stream` (of `size` bytes, if known: for progress).

    Raises `LineError` for the first invalid record, leaving the database as it was.
    """
    progress = progress or NoProgress()
    progress.start("import", size)
    records = _validated(read_records(stream, partial(progress.advance, "import")))
    read = dict.fromkeys(Kind, 0)
    with engine.begin() as connection:
        merger = Merger(connection, progress)
        for kind, group in groupby(records, key=lambda record: record[0]):
            for batch in batched(((line, record) for _, line, record in group), batch_size):
                merger.write(kind, batch)
                read[kind] += len(batch)
        written = merger.finish()
    return ImportReport(
        users=read[Kind.USER], tags=read[Kind.TAG], items=read[Kind.ITEM], written=written
    )


def _validated(records: Iterator[RawRecord]) -> Iterator[tuple[Kind, int, Record]]:
    """Records as models, checked for section order and for increasing, unique keys."""
    section = 0
    previous: Any = None
    for line, kind_name, fields in records:
        kind = _KINDS[kind_name]
        position = _ORDER.index(kind)
        if position < section:
            raise LineError(
                line,
                f"a {kind} record after the {_ORDER[section]} records: users come first, "
                "then tags, then items",
            )
        if position > section:
            section, previous = position, None
        try:
            record = MODELS[kind].model_validate(fields)
        except ValidationError as error:
            raise LineError(line, validation_message(error)) from None
        key_name = KEYS[kind]
        key = getattr(record, key_name)
        if previous is not None and key <= previous:
            raise LineError(
                line,
                f"{key_name}: {key!r} is out of order (it follows {previous!r}): {kind} "
                f"records are sorted by {key_name}, each {key_name} once",
            )
        previous = key
        yield kind, line, record
