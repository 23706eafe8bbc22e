r"""The two encodings of an export file, JSON Lines and CSV: UTF-8, one record per line.

JSON Lines (the default): a header object, one object per record with its kind in `type`
and the fields of `records.FIELDS` in that order, and an end object:

    {"type":"header","format":"catalog","version":1}
    {"type":"user","email":"ada@example.com","full_name":"Ada",...,"hashed_password":"$argon2id$..."}
    {"type":"tag","name":"kitchen"}
    {"type":"item","id":7,"owner":"ada@example.com",...,"price":"12.50",...,"tags":["kitchen"]}
    {"type":"end"}

CSV: a header row naming the columns, one row per record whose `record` column gives its
kind (the columns a kind does not use stay empty), and a last row `end`. NULL is written
`\N`; a text that begins with a backslash gets one more in front, so the text "\N" is
written `\\N` and every cell reads back exactly. Booleans are `true`/`false`; an item's tags
are a JSON list of names. Rows end in CRLF (RFC 4180); fields are quoted only when needed.

The end record proves the file is complete: an import refuses a file that stops before it,
so an interrupted export or a broken pipe cannot pass for a smaller catalog.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from enum import StrEnum
from itertools import chain
from typing import Any, BinaryIO, Protocol

import orjson

from catalog.transfer.records import FIELDS, FORMAT_VERSION, Fields, Kind, LineError

END = "end"
HEADER: dict[str, Any] = {"type": "header", "format": "catalog", "version": FORMAT_VERSION}
COLUMNS = (
    "id",
    "owner",
    "email",
    "name",
    "full_name",
    "description",
    "price",
    "is_active",
    "is_superuser",
    "created_at",
    "updated_at",
    "tags",
    "hashed_password",
)
"""The CSV columns after `record`: every kind's fields, each once (the hashes last)."""
CSV_HEADER = ["record", *COLUMNS]
NULL = "\\N"
_KINDS = frozenset(kind.value for kind in Kind)
_PROGRESS_BYTES = 1 << 20  # report progress per MiB read, not per line


class Format(StrEnum):
    """An export file's encoding."""

    JSONL = "jsonl"
    CSV = "csv"


RawRecord = tuple[int, str, dict[str, Any]]
"""(line number, kind as written, fields not yet validated)"""


# --- writing -------------------------------------------------------------------------------


class RecordWriter(Protocol):
    """Writes the header when created, then records; `finish` writes the end record."""

    def record(self, kind: Kind, fields: Fields) -> None: ...

    def finish(self) -> None: ...


class JsonlWriter:
    """JSON Lines: compact objects, keys in field order, non-ASCII text as UTF-8."""

    def __init__(self, stream: BinaryIO) -> None:
        self._write = stream.write
        self._write(orjson.dumps(HEADER) + b"\n")

    def record(self, kind: Kind, fields: Fields) -> None:
        self._write(orjson.dumps({"type": kind.value} | fields) + b"\n")

    def finish(self) -> None:
        self._write(orjson.dumps({"type": END}) + b"\n")


class _Utf8Text:
    """The text side of a binary stream, for csv.writer (no wrapper that would close it)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text.encode())


def _cell(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return orjson.dumps(value).decode()
    text = str(value)
    return "\\" + text if text.startswith("\\") else text


class CsvWriter:
    """CSV with a `record` column; see the module docstring for NULLs and escapes."""

    def __init__(self, stream: BinaryIO) -> None:
        # RFC 4180's CRLF: csv quotes a field holding any character of the line terminator,
        # so with "\n" alone a text with a bare "\r" would go out unquoted and not read back.
        self._writer = csv.writer(_Utf8Text(stream), lineterminator="\r\n")
        self._writer.writerow(CSV_HEADER)

    def record(self, kind: Kind, fields: Fields) -> None:
        cells = [_cell(fields[column]) if column in fields else "" for column in COLUMNS]
        self._writer.writerow([kind.value, *cells])

    def finish(self) -> None:
        self._writer.writerow([END] + [""] * len(COLUMNS))


WRITERS: dict[Format, Callable[[BinaryIO], RecordWriter]] = {
    Format.JSONL: JsonlWriter,
    Format.CSV: CsvWriter,
}


# --- reading -------------------------------------------------------------------------------


def read_records(stream: BinaryIO, on_bytes: Callable[[int], None]) -> Iterator[RawRecord]:
    """The data records of an export file in either format, checked for header and end.

    Yields records as written, with their line numbers (a CSV record spanning lines has the
    number of its first). Raises `LineError` for anything that is not a complete export;
    validation of the fields is the importer's. `on_bytes` is told how much was read.
    """
    lines = _lines(stream, on_bytes)
    first = next(lines, None)
    if first is None:
        raise LineError(1, "the file is empty")
    lines = chain([first], lines)
    if first.lstrip().startswith("{"):
        records = _jsonl(lines)
    elif first.startswith(CSV_HEADER[0] + ","):
        records = _csv(lines)
    else:
        raise LineError(1, "not a catalog export: no JSON header object nor CSV header row")
    last = 1
    for line, kind, fields in records:
        if kind == END:
            _expect_nothing_after(records)
            return
        _check_kind(line, kind)
        last = line
        yield line, kind, fields
    raise LineError(last + 1, "the file ends before its end record: it is incomplete")


def _check_kind(line: int, kind: str) -> None:
    if kind not in _KINDS and kind != END:
        raise LineError(line, f"unknown record type {kind!r}")


def _expect_nothing_after(records: Iterator[RawRecord]) -> None:
    for line, _, _ in records:
        raise LineError(line, "nothing may follow the end record")


def _lines(stream: BinaryIO, on_bytes: Callable[[int], None]) -> Iterator[str]:
    pending = 0
    for number, raw in enumerate(stream, 1):
        pending += len(raw)
        if pending >= _PROGRESS_BYTES:
            on_bytes(pending)
            pending = 0
        if number == 1 and raw.startswith(codecs.BOM_UTF8):  # spreadsheets write one
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise LineError(number, f"not valid UTF-8 ({error.reason})") from None
    on_bytes(pending)


def _jsonl(lines: Iterator[str]) -> Iterator[RawRecord]:
    for line, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise LineError(line, f"not valid JSON: {error}") from None
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise LineError(line, 'a record is a JSON object with a string "type"')
        if line == 1:
            _check_header(value)
            continue
        kind = value.pop("type")
        yield line, kind, value


def _check_header(value: dict[str, Any]) -> None:
    if value.get("type") != "header" or value.get("format") != HEADER["format"]:
        raise LineError(1, f"not a catalog export: the first line must be {HEADER}")
    if value != HEADER:
        raise LineError(1, f"unsupported header {value} (this version reads {HEADER})")


def _csv(lines: Iterator[str]) -> Iterator[RawRecord]:
    reader = csv.reader(lines, strict=True)
    line = 1
    while True:
        try:
            row = next(reader, None)
        except csv.Error as error:
            raise LineError(line, f"not valid CSV: {error}") from None
        if row is None:
            return
        if line == 1 and row != CSV_HEADER:
            raise LineError(1, f"the CSV header row must be {','.join(CSV_HEADER)}")
        if line > 1 and row:
            yield line, row[0], _csv_fields(line, row)
        line = reader.line_num + 1


def _csv_fields(line: int, row: list[str]) -> dict[str, Any]:
    if len(row) != len(CSV_HEADER):
        raise LineError(line, f"expected {len(CSV_HEADER)} columns, found {len(row)}")
    kind = row[0]
    _check_kind(line, kind)
    used = FIELDS[Kind(kind)] if kind != END else ()
    fields: dict[str, Any] = {}
    for column, cell in zip(COLUMNS, row[1:], strict=True):
        if column in used:
            fields[column] = _cell_value(line, column, cell)
        elif cell:
            raise LineError(line, f"{column}: must be empty in a {kind} row")
    return fields


def _cell_value(line: int, column: str, cell: str) -> Any:
    if cell == NULL:
        return None
    if cell.startswith("\\"):
        return cell[1:]
    if column == "tags":
        try:
            return orjson.loads(cell)
        except orjson.JSONDecodeError:
            raise LineError(line, 'tags: not a JSON list of names, e.g. ["a","b"]') from None
    return cell
