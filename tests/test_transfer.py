"""`catalog export` / `catalog import` against real databases, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console
from sqlalchemy import Engine, Table, delete, func, insert, select, update

from catalog.cli import transfer as transfer_cli
from catalog.db.engine import create_sync_engine
from catalog.migrations.runner import upgrade
from catalog.models import Item, Tag, User, item_tags
from catalog.security import hash_password, is_password_hash, verify_password
from catalog.transfer import Format, ImportReport, LineError, export_catalog, import_catalog
from tests.conftest import make_settings, throwaway_database
from tests.test_cli import assert_one_line_error, invoke

AS_OF = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
PASSWORDS = {"ada@example.com": "ada-password", "bob@example.com": "bob-password"}
ZOE = "zoë@exämple.com"
TAGS = ("kitchen", "café", "日本", "unused", 'a,b "q"')
TAGGED_ITEM_DESCRIPTION = 'line1\nline2\ttab \\ backslash, "quoted"\r\nend'
ITEMS: list[dict[str, Any]] = [
    # Prices at both ends of the range, NULL and empty descriptions, texts that look like
    # the CSV NULL marker, items with and without tags; ids with gaps, as after deletes.
    {"id": 3, "owner": "ada@example.com", "name": "Lamp", "description": None,
     "price": Decimal("0.01"), "tags": ["kitchen", "café"]},
    {"id": 10, "owner": ZOE, "name": "Ünïcode 日本 ✓", "description": TAGGED_ITEM_DESCRIPTION,
     "price": Decimal("9999999999.99"), "is_active": False, "tags": ["日本", 'a,b "q"'],
     "updated_at": AS_OF + timedelta(days=1)},
    {"id": 11, "owner": "bob@example.com", "name": "Empty description", "description": "",
     "price": Decimal("0.00"), "tags": []},
    {"id": 12, "owner": "ada@example.com", "name": "\\N", "description": "\\N",
     "price": Decimal("12.50"), "tags": ["kitchen"]},
    {"id": 13, "owner": "ada@example.com", "name": "\\\\x", "description": "\\",
     "price": Decimal("1234.56"), "tags": []},
]  # fmt: skip


def fill(engine: Engine) -> None:
    """The sample catalog, written with plain inserts (not by the code under test)."""
    with engine.begin() as connection:
        users = [
            ("ada@example.com", None, True, True, PASSWORDS["ada@example.com"]),
            ("bob@example.com", "", True, False, PASSWORDS["bob@example.com"]),
            (ZOE, 'Zoë 🚀 "Z", \\N', False, False, "zoe-password"),
        ]
        for email, full_name, is_active, is_superuser, password in users:
            connection.execute(
                insert(User).values(
                    email=email,
                    full_name=full_name,
                    is_active=is_active,
                    is_superuser=is_superuser,
                    hashed_password=hash_password(password),
                )
            )
        connection.execute(update(User).values(created_at=AS_OF))
        owners = dict(connection.execute(select(User.email, User.id)).tuples().all())
        connection.execute(insert(Tag), [{"name": name} for name in TAGS])
        tag_ids = dict(connection.execute(select(Tag.name, Tag.id)).tuples().all())
        for offset, item in enumerate(ITEMS):
            values = {k: v for k, v in item.items() if k not in {"owner", "tags"}}
            values |= {"owner_id": owners[item["owner"]], "created_at": AS_OF}
            values["created_at"] += timedelta(microseconds=offset)
            connection.execute(insert(Item).values(**values))
            for name in item["tags"]:
                connection.execute(
                    insert(item_tags).values(item_id=item["id"], tag_id=tag_ids[name])
                )


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every value a file carries, keyed as the file keys them (no user or tag ids)."""
    with engine.connect() as connection:
        return {
            "users": list(
                connection.execute(
                    select(
                        User.email,
                        User.full_name,
                        User.is_active,
                        User.is_superuser,
                        User.created_at,
                        User.hashed_password,
                    ).order_by(User.email)
                ).tuples()
            ),
            "tags": [(name,) for name in connection.scalars(select(Tag.name).order_by(Tag.name))],
            "items": list(
                connection.execute(
                    select(
                        Item.id,
                        User.email,
                        Item.name,
                        Item.description,
                        Item.price,
                        Item.is_active,
                        Item.created_at,
                        Item.updated_at,
                    )
                    .join(User, User.id == Item.owner_id)
                    .order_by(Item.id)
                ).tuples()
            ),
            "item_tags": list(
                connection.execute(
                    select(item_tags.c.item_id, Tag.name)
                    .join(Tag, Tag.id == item_tags.c.tag_id)
                    .order_by(item_tags.c.item_id, Tag.name)
                ).tuples()
            ),
        }


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in TABLES
        }


def export_bytes(engine: Engine, file_format: Format = Format.JSONL, **options: Any) -> bytes:
    stream = io.BytesIO()
    export_catalog(engine, stream, file_format=file_format, **options)
    return stream.getvalue()


def import_bytes(engine: Engine, data: bytes, **options: Any) -> ImportReport:
    return import_catalog(engine, io.BytesIO(data), **options)


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


EngineFactory = Callable[[], Engine]
TABLES = [cast(Table, model.__table__) for model in (User, Tag, Item)] + [item_tags]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def new_engine(backend: str, tmp_path: Path) -> Iterator[EngineFactory]:
    """Factory: a migrated, empty throwaway database of the backend, as an engine."""
    with ExitStack() as stack:

        def make() -> Engine:
            url = stack.enter_context(throwaway_database(backend, tmp_path))
            upgrade(make_settings(url))
            engine = create_sync_engine(make_settings(url))
            stack.callback(engine.dispose)
            return engine

        yield make


@pytest.fixture
def source(new_engine: EngineFactory) -> Engine:
    engine = new_engine()
    fill(engine)
    return engine


# --- the round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", list(Format))
def test_round_trip_gives_identical_files(
    source: Engine, new_engine: EngineFactory, file_format: Format
) -> None:
    exported = export_bytes(source, file_format)
    target = new_engine()
    report = import_bytes(target, exported)
    assert (report.users, report.tags, report.items) == (3, 5, 5)
    assert export_bytes(target, file_format) == exported
    assert snapshot(target) == snapshot(source)
    # The hashes came along: every user logs in with the password they had.
    hashes = {row[0]: row[5] for row in snapshot(target)["users"]}
    assert all(verify_password(password, hashes[email]) for email, password in PASSWORDS.items())


def test_both_formats_hold_the_same_data(source: Engine, new_engine: EngineFactory) -> None:
    from_csv = new_engine()
    import_bytes(from_csv, export_bytes(source, Format.CSV))
    assert export_bytes(from_csv, Format.JSONL) == export_bytes(source, Format.JSONL)


def test_round_trip_between_sqlite_and_postgresql(tmp_path: Path) -> None:
    engines: list[Engine] = []
    with ExitStack() as stack:
        for backend in ("sqlite", "postgresql"):
            url = stack.enter_context(throwaway_database(backend, tmp_path))
            upgrade(make_settings(url))
            engines.append(create_sync_engine(make_settings(url)))
            stack.callback(engines[-1].dispose)
        sqlite_engine, postgres_engine = engines
        fill(sqlite_engine)
        for file_format in Format:
            exported = export_bytes(sqlite_engine, file_format)
            import_bytes(postgres_engine, exported)
            assert export_bytes(postgres_engine, file_format) == exported
        assert snapshot(postgres_engine) == snapshot(sqlite_engine)


def test_the_file_format_is_exact(source: Engine) -> None:
    lines = export_bytes(source).decode().splitlines()
    assert lines[0] == '{"type":"header","format":"catalog","version":1}'
    assert [json.loads(line)["type"] for line in lines[1:]] == (
        ["user"] * 3 + ["tag"] * 5 + ["item"] * 5 + ["end"]
    )
    assert json.loads(lines[1])["email"] == "ada@example.com"
    assert [json.loads(line)["name"] for line in lines[4:9]] == sorted(TAGS)
    assert lines[10] == (
        '{"type":"item","id":10,"owner":"zoë@exämple.com","name":"Ünïcode 日本 ✓",'
        '"description":"line1\\nline2\\ttab \\\\ backslash, \\"quoted\\"\\r\\nend",'
        '"price":"9999999999.99","is_active":false,"created_at":"2026-03-01T12:00:00.123457Z",'
        '"updated_at":"2026-03-02T12:00:00.123456Z","tags":["a,b \\"q\\"","日本"]}'
    )

    rows = export_bytes(source, Format.CSV).decode().split("\n")
    assert rows[0] == (
        "record,id,owner,email,name,full_name,description,price,is_active,is_superuser,"
        "created_at,updated_at,tags,hashed_password"
    )
    assert rows[1].startswith(
        "user,,,ada@example.com,,\\N,,,true,true,2026-03-01T12:00:00.123456Z,"
    )
    assert rows[2].startswith("user,,,bob@example.com,,,,,true,false,")  # "" is not NULL
    assert rows[9] == (
        "item,3,ada@example.com,,Lamp,,\\N,0.01,true,,2026-03-01T12:00:00.123456Z,\\N,"
        '"[""café"",""kitchen""]",'
    )
    assert rows[13] == (
        "item,11,bob@example.com,,Empty description,,,0.00,true,,2026-03-01T12:00:00.123458Z,"
        "\\N,[],"
    )
    assert rows[14].startswith("item,12,ada@example.com,,\\\\N,,\\\\N,12.50,")  # not NULL
    assert rows[-2:] == ["end" + "," * 13, ""]


# --- idempotence and existing data -------------------------------------------------------------


def test_importing_twice_changes_nothing(source: Engine, new_engine: EngineFactory) -> None:
    exported = export_bytes(source)
    target = new_engine()
    first = import_bytes(target, exported)
    assert (first.written.users, first.written.items, first.written.item_tags) == (3, 5, 5)
    before = snapshot(target), row_counts(target)
    with target.connect() as connection:
        user_ids = connection.execute(select(User.email, User.id).order_by(User.id)).all()

    again = import_bytes(target, exported)
    assert again.written.users == again.written.tags == again.written.items == 0
    assert again.written.item_tags == 0
    assert (snapshot(target), row_counts(target)) == before  # updated_at included
    with target.connect() as connection:
        assert connection.execute(select(User.email, User.id).order_by(User.id)).all() == user_ids


def test_import_into_a_database_with_other_and_changed_rows(
    source: Engine, new_engine: EngineFactory
) -> None:
    exported = export_bytes(source)
    target = new_engine()
    import_bytes(target, exported)
    with target.begin() as connection:
        # Changed since the export: bob's account, item 3 (price, tags, updated_at).
        bob_hash = hash_password("bob-new-password")
        connection.execute(
            update(User)
            .where(User.email == "bob@example.com")
            .values(full_name="Robert", is_active=False, hashed_password=bob_hash)
        )
        connection.execute(
            update(Item).where(Item.id == 3).values(price=Decimal(5), updated_at=AS_OF)
        )
        unused = connection.scalar(select(Tag.id).where(Tag.name == "unused"))
        connection.execute(delete(item_tags).where(item_tags.c.item_id == 3))
        connection.execute(insert(item_tags).values(item_id=3, tag_id=unused))
        # Deleted since: item 12 and the tag "kitchen" (with its links).
        connection.execute(delete(Item).where(Item.id == 12))
        connection.execute(delete(Tag).where(Tag.name == "kitchen"))
        # Not in the file at all: a user, their item, a tag.
        carol = connection.execute(
            insert(User)
            .values(email="carol@example.com", hashed_password=hash_password("carol-pass"))
            .returning(User.id)
        ).scalar_one()
        connection.execute(insert(Item).values(id=99, name="Carol's", price=1, owner_id=carol))
        connection.execute(insert(Tag).values(name="local"))
        ada_id = connection.scalar(select(User.id).where(User.email == "ada@example.com"))

    report = import_bytes(target, exported)

    # The file's rows are as in the file again; bob's password too.
    assert (report.written.users, report.written.items, report.written.tags) == (1, 2, 1)
    restored, expected = snapshot(target), snapshot(source)
    assert [row for row in restored["users"] if row[0] != "carol@example.com"] == expected["users"]
    assert [row for row in restored["items"] if row[0] != 99] == expected["items"]
    assert restored["item_tags"] == expected["item_tags"]
    assert [row for row in restored["tags"] if row != ("local",)] == expected["tags"]
    # What the file does not name is left alone; existing users keep their ids.
    assert ("local",) in restored["tags"]
    assert [row[0] for row in restored["items"]].count(99) == 1
    with target.connect() as connection:
        assert connection.scalar(select(User.id).where(User.email == "ada@example.com")) == ada_id


def test_an_item_id_taken_by_another_item_stops_the_import(
    source: Engine, new_engine: EngineFactory
) -> None:
    target = new_engine()
    with target.begin() as connection:
        owner = connection.execute(
            insert(User).values(email="x@example.com", hashed_password="h").returning(User.id)
        ).scalar_one()
        # Same id as the file's second item, but created at another time: another item.
        connection.execute(insert(Item).values(id=10, name="Mine", price=2, owner_id=owner))
    before = snapshot(target)
    with pytest.raises(LineError) as raised:
        import_bytes(target, export_bytes(source))
    assert raised.value.line == 11
    assert "item 10 exists in the database with another created_at" in str(raised.value)
    assert snapshot(target) == before


def test_import_without_passwords(source: Engine, new_engine: EngineFactory) -> None:
    exported = export_bytes(source, passwords=False)
    assert all(
        json.loads(line).get("hashed_password", "absent") in (None, "absent")
        for line in exported.splitlines()
    )
    target = new_engine()
    with target.begin() as connection:
        connection.execute(
            insert(User).values(email="ada@example.com", hashed_password=hash_password("mine-1234"))
        )
    import_bytes(target, exported)
    hashes = {row[0]: row[5] for row in snapshot(target)["users"]}
    assert verify_password("mine-1234", hashes["ada@example.com"])  # existing: unchanged
    new = hashes["bob@example.com"]  # new: an unusable password, but a valid hash
    assert is_password_hash(new)
    assert not verify_password(PASSWORDS["bob@example.com"], new)
    assert not verify_password("", new)


def test_later_inserts_continue_after_the_imported_ids(
    source: Engine, new_engine: EngineFactory
) -> None:
    target = new_engine()
    import_bytes(target, export_bytes(source))
    with target.begin() as connection:
        owner = connection.execute(
            insert(User).values(email="new@example.com", hashed_password="h").returning(User.id)
        ).scalar_one()
        item = connection.execute(
            insert(Item).values(name="new", price=1, owner_id=owner).returning(Item.id)
        ).scalar_one()
    assert item == 14  # after the largest imported id, 13


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
        engines = []
        for _ in range(2):
            url = stack.enter_context(throwaway_database(backend, tmp_path_factory.mktemp("db")))
            upgrade(make_settings(url))
            engines.append(create_sync_engine(make_settings(url)))
            stack.callback(engines[-1].dispose)
        fill(engines[0])
        yield export_bytes(engines[0]), engines[1]


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
    rows = export_bytes(source, Format.CSV).decode().split("\n")
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


# --- the commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", list(Format))
def test_cli_export_then_import_from_a_file_and_from_stdin(
    source: Engine, new_engine: EngineFactory, tmp_path: Path, file_format: Format
) -> None:
    path = tmp_path / f"catalog.{file_format}"
    result = invoke(url_of(source), "export", "--format", file_format, "--output", str(path))
    assert result.exit_code == 0, result.output
    # No progress bar off a terminal: the summary only.
    summary = rf"Exported 3 users, 5 tags and 5 items to {path} \({file_format}\) in \d+\.\d s\n"
    assert re.fullmatch(summary, result.stderr)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds password hashes
    assert path.read_bytes() == export_bytes(source, file_format)
    assert [name for name in os.listdir(tmp_path) if "catalog." in name] == [path.name]

    target = new_engine()
    first = invoke(url_of(target), "import", str(path))
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    again = invoke(url_of(target), "import", "-", input=path.read_bytes())  # type: ignore[arg-type]
    assert again.exit_code == 0, again.output
    assert "│ items     │ 5    │ 0 " in again.stdout
    assert snapshot(target) == snapshot(source)

    to_stdout = invoke(url_of(target), "export", "-f", file_format)
    assert to_stdout.stdout_bytes == path.read_bytes()


def test_cli_refused_import_is_one_line_exit_1(
    source: Engine, new_engine: EngineFactory, tmp_path: Path
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_bytes(_edit(export_bytes(source), 11, _set(price="-1")))
    target = new_engine()
    result = invoke(url_of(target), "import", str(path))
    assert_one_line_error(result, 1, "error: line 11: price: Input should be greater than or")
    assert result.stderr.strip().endswith("(nothing was imported)")
    assert set(row_counts(target).values()) == {0}

    missing = invoke(url_of(target), "import", str(tmp_path / "nope.jsonl"))
    assert_one_line_error(missing, 1, "cannot read", "No such file or directory")


def test_cli_failed_export_leaves_no_file(backend: str, tmp_path: Path) -> None:
    with throwaway_database(backend, tmp_path) as unmigrated:
        result = invoke(unmigrated, "export", "--output", str(tmp_path / "out.jsonl"))
    assert_one_line_error(result, 1, "database error")
    assert not [name for name in os.listdir(tmp_path) if name.startswith((".out", "out"))]


def test_cli_shows_a_progress_bar_on_a_terminal(
    source: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    monkeypatch.setattr(transfer_cli, "err", terminal)
    result = invoke(url_of(source), "export", "--output", "out.jsonl")
    assert result.exit_code == 0, result.output
    shown = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "export" in shown
    assert "13/13" in shown  # 3 users + 5 tags + 5 items
    assert "\x1b[" in shown  # drawn with terminal control codes
