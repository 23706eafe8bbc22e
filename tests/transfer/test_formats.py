"""The two encodings on their own (no database): exact round trips and refused framing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.transfer.formats import COLUMNS, WRITERS, Format, RawRecord, read_records
from catalog.transfer.records import FIELDS, Fields, Kind, LineError

USER: Fields = {
    "email": "ada@example.com",
    "full_name": None,
    "is_active": True,
    "is_superuser": False,
    "created_at": "2026-01-01T00:00:00.000000Z",
    "hashed_password": None,
}
ITEM: Fields = {
    "id": 7,
    "owner": "ada@example.com",
    "name": "x",
    "description": "",
    "price": "0.01",
    "is_active": False,
    "created_at": "2026-01-01T00:00:00.000000Z",
    "updated_at": None,
    "tags": ["a b", 'c,"d"'],
}


def encode(file_format: Format, *records: tuple[Kind, Fields]) -> bytes:
    stream = io.BytesIO()
    writer = WRITERS[file_format](stream)
    for kind, fields in records:
        writer.record(kind, fields)
    writer.finish()
    return stream.getvalue()


def decode(data: bytes) -> list[RawRecord]:
    return list(read_records(io.BytesIO(data), lambda amount: None))


def refusal(data: bytes) -> str:
    with pytest.raises(LineError) as raised:
        decode(data)
    return str(raised.value)


def test_csv_columns_are_every_field_once() -> None:
    assert sorted(COLUMNS) == sorted({name for kind in Kind for name in FIELDS[kind]})


@pytest.mark.parametrize("file_format", list(Format))
def test_records_read_back_as_written(file_format: Format) -> None:
    data = encode(file_format, (Kind.USER, USER), (Kind.TAG, {"name": "a b"}), (Kind.ITEM, ITEM))
    records = decode(data)
    assert [(line, kind) for line, kind, _ in records] == [(2, "user"), (3, "tag"), (4, "item")]
    user, tag, item = (fields for _, _, fields in records)
    assert tag == {"name": "a b"}
    if file_format is Format.JSONL:
        assert (user, item) == (USER, ITEM)
    else:  # CSV cells are text until validated; NULL, "" and lists are exact already
        assert user["full_name"] is None
        assert user["is_active"] == "true"
        assert item["description"] == ""
        assert item["tags"] == ITEM["tags"]
        assert item["id"] == "7"


# Any text the database can store (no NUL, no lone surrogate), or NULL.
texts = st.none() | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))


@given(value=texts)
@pytest.mark.parametrize("file_format", list(Format))
def test_any_text_or_null_survives_exactly(file_format: Format, value: str | None) -> None:
    fields = USER | {"full_name": value}
    [(_, _, read)] = decode(encode(file_format, (Kind.USER, fields)))
    assert read["full_name"] == value


def test_csv_with_a_byte_order_mark_and_crlf_line_ends_is_read() -> None:
    data = encode(Format.CSV, (Kind.TAG, {"name": "a"}), (Kind.ITEM, ITEM))
    crlf = b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")
    assert [fields for _, _, fields in decode(crlf)] == [fields for _, _, fields in decode(data)]


def test_blank_jsonl_lines_are_skipped_and_counted() -> None:
    data = encode(Format.JSONL, (Kind.TAG, {"name": "a"})).replace(b"\n", b"\n\n", 1)
    assert [(line, kind) for line, kind, _ in decode(data)] == [(3, "tag")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "line 1: the file is empty"),
        (b"id,name\n1,x\n", "line 1: not a catalog export"),
        (b'{"type":"header","format":"other"}\n', "line 1: not a catalog export"),
        (
            b'{"type":"header","format":"catalog","version":2}\n{"type":"end"}\n',
            "line 1: unsupported header",
        ),
        (b"record,id\nend,\n", "line 1: the CSV header row must be record,id,owner,"),
        (
            b'{"type":"header","format":"catalog","version":1}\n{"type":"tag","name":"\xff"}\n',
            "line 2: not valid UTF-8",
        ),
        (b'{"type":"header","format":"catalog","version":1}\n["tag"]\n', "line 2: a record is"),
        (b'{"type":"header","format":"catalog","version":1}\n', "line 2: the file ends before"),
    ],
)
def test_refused_framing(data: bytes, message: str) -> None:
    assert refusal(data).startswith(message)


def test_csv_quoting_errors_name_the_line() -> None:
    data = encode(Format.CSV, (Kind.TAG, {"name": "a"}))
    broken = data.replace(b"tag,,,,a", b'tag,,,,"a', 1)  # the quote never closes
    assert refusal(broken).startswith("line 2: not valid CSV")


def test_csv_end_row_must_be_empty() -> None:
    data = encode(Format.CSV)
    assert refusal(data.replace(b"end,", b"end,x", 1)).startswith("line 2: id: must be empty")


def _with_extra(kind: Kind, fields: dict[str, Any]) -> bytes:
    return encode(Format.JSONL, (kind, fields))


def test_jsonl_keeps_unknown_fields_for_the_validator_to_refuse() -> None:
    [(_, _, fields)] = decode(_with_extra(Kind.TAG, {"name": "a", "colour": "red"}))
    assert fields == {"name": "a", "colour": "red"}
