"""Refused files: the error names the line, and nothing of the file is written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from sqlalchemy import Engine, delete

from catalog.transfer import Format, LineError
from tests.transfer.sample import (
    TABLES,
    EngineFactory,
    export_bytes,
    fill,
    import_bytes,
    migrated_engine,
    row_counts,
)

# --- refused files: the line, and nothing written ------------------------------------------


def _edit(data: bytes, line: int, change: Callable[[dict[str, Any]], Any]) -> bytes:
    lines = data.decode().split("\n")
    record = json.loads(lines[line - 1])
    change(record)
    lines[line - 1] = json.dumps(record, ensure_ascii=False)
    return "\n".join(lines).encode()


def _set(**values: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda record: record.update(values)


# Lines of the sample's JSONL export: 1 header, 2-4 users, 5-9 tags, 10-14 items, 15 end.
BROKEN: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "price with 3 decimals": (
        lambda d: _edit(d, 11, _set(price="0.001")),
        "line 11: price: Decimal input should have no more than 2 decimal places",
    ),
    "price too large": (lambda d: _edit(d, 12, _set(price="1e10")), "line 12: price: "),
    "bad email": (
        lambda d: _edit(d, 3, _set(email="bob-at-example.com")),
        "line 3: email: value is not a valid email address",
    ),
    "unknown owner": (
        lambda d: _edit(d, 13, _set(owner="ghost@example.com")),
        "line 13: owner: no user ghost@example.com in the file or database",
    ),
    "item ids out of order": (
        lambda d: _edit(d, 13, _set(id=3)),
        "line 13: id: 3 is out of order (it follows 11)",
    ),
    "duplicate user": (
        lambda d: _edit(d, 3, _set(email="ADA@example.com")),
        "line 3: email: 'ada@example.com' is out of order",
    ),
    "tag with a slash": (lambda d: _edit(d, 6, _set(name="a/b")), "line 6: name: "),
    "unknown field": (
        lambda d: _edit(d, 10, _set(colour="red")),
        "line 10: colour: Extra inputs are not permitted",
    ),
    "missing field": (
        lambda d: _edit(d, 14, lambda r: r.pop("created_at")),
        "line 14: created_at: Field required",
    ),
    "NUL in a name": (lambda d: _edit(d, 14, _set(name="a\x00b")), "line 14: name: "),
    "too many tags": (
        lambda d: _edit(d, 10, _set(tags=[f"t{i}" for i in range(51)])),
        "line 10: tags: List should have at most 50 items",
    ),
    "naive timestamp": (
        lambda d: _edit(d, 2, _set(created_at="2026-01-01T00:00:00")),
        "line 2: created_at: Input should have timezone info",
    ),
    "not a password hash": (
        lambda d: _edit(d, 2, _set(hashed_password="hunter2")),
        "line 2: hashed_password: Value error, not a password hash",
    ),
    "tag after items": (
        lambda d: (
            b"\n".join([*d.split(b"\n")[:4], *d.split(b"\n")[5:14], d.split(b"\n")[4]])
            + b'\n{"type":"end"}\n'
        ),
        "line 14: a tag record after the item records",
    ),
    "truncated": (
        lambda d: b"\n".join(d.split(b"\n")[:12]) + b"\n",
        "line 13: the file ends before its end record",
    ),
    "not JSON": (
        lambda d: d.replace(b'{"type":"tag"', b'{type:"tag"', 1),
        "line 5: not valid JSON",
    ),
    "unknown type": (lambda d: _edit(d, 7, _set(type="label")), "line 7: unknown record type"),
    "after the end": (lambda d: d + b'{"type":"tag","name":"z"}\n', "line 16: nothing may follow"),
}


@pytest.fixture(scope="module")
def sample_export(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[bytes, Engine]]:
    """The sample's JSONL export and an empty database that every refused import leaves so."""
    with ExitStack() as stack:
        source = migrated_engine(stack, backend, tmp_path_factory.mktemp("source"))
        fill(source)
        yield export_bytes(source), migrated_engine(stack, backend, tmp_path_factory.mktemp("db"))


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_refused_file_names_the_line_and_writes_nothing(
    sample_export: tuple[bytes, Engine], case: str
) -> None:
    exported, target = sample_export
    breaking, message = BROKEN[case]
    # One record per batch: the users and tags before the bad line were merged already.
    with pytest.raises(LineError) as raised:
        import_bytes(target, breaking(exported), batch_size=1)
    assert str(raised.value).startswith(message)
    assert set(row_counts(target).values()) == {0}


def test_a_failed_import_leaves_the_connection_usable(sample_export: tuple[bytes, Engine]) -> None:
    exported, target = sample_export
    breaking, _ = BROKEN["unknown owner"]
    with pytest.raises(LineError):
        import_bytes(target, breaking(exported))
    try:
        assert import_bytes(target, exported).items == 5  # the staging tables were rolled back
    finally:
        with target.begin() as connection:
            for table in reversed(TABLES):
                connection.execute(delete(table))


def test_csv_errors_name_the_line(source: Engine, new_engine: EngineFactory) -> None:
    # Physical lines, rejoined with LF ends below (the reader takes both).
    rows = [row.removesuffix("\r") for row in export_bytes(source, Format.CSV).decode().split("\n")]
    target = new_engine()
    # Item 10's description spans three lines (11 to 13): item 11 is on line 14.
    assert rows[10].startswith("item,10,")
    assert rows[13].startswith("item,11,")
    tag_with_tags = ",".join(["tag", "", "", "", "zz", *[""] * 7, "[]", ""])
    cases = {
        13: (rows[13].replace(",0.00,", ",zero,"), "line 14: price: "),
        2: (rows[2] + ",", "line 3: expected 14 columns, found 15"),
        8: (tag_with_tags, "line 9: tags: must be empty in a tag row"),
        15: (rows[15].replace(",[],", ',["a",'), "line 16: tags: not a JSON list"),
        1: (rows[1].replace(",true,", ",yes please,", 1), "line 2: is_active: "),
    }
    for index, (row, message) in cases.items():
        broken = "\n".join([*rows[:index], row, *rows[index + 1 :]]).encode()
        with pytest.raises(LineError) as raised:
            import_bytes(target, broken)
        assert str(raised.value).startswith(message), index
    assert set(row_counts(target).values()) == {0}
