"""Export, import, export: the same bytes; re-import, existing rows, passwords, ids."""

from __future__ import annotations

import json
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, select, text, update

from catalog.db.engine import create_sync_engine
from catalog.models import Item, Tag, User, item_tags
from catalog.security import hash_password, is_password_hash, verify_password
from catalog.transfer import Format, LineError
from tests.conftest import make_settings, schema_objects
from tests.test_cli import invoke
from tests.transfer.sample import (
    AS_OF,
    PASSWORDS,
    TAGS,
    EngineFactory,
    export_bytes,
    fill,
    import_bytes,
    migrated_engine,
    row_counts,
    snapshot,
    url_of,
)

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
    with ExitStack() as stack:
        sqlite_engine = migrated_engine(stack, "sqlite", tmp_path)
        postgres_engine = migrated_engine(stack, "postgresql", tmp_path)
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

    csv = export_bytes(source, Format.CSV).decode()
    assert csv.endswith("\r\n")
    rows = [row.removesuffix("\r") for row in csv.split("\n")]  # physical lines
    assert rows[0] == (
        "record,id,owner,email,name,full_name,description,price,is_active,is_superuser,"
        "created_at,updated_at,tags,hashed_password"
    )
    assert rows[10:13] == [  # a quoted field spans lines; its own CR LF stays as it was
        'item,10,zoë@exämple.com,,Ünïcode 日本 ✓,,"line1',
        'line2\ttab \\ backslash, ""quoted""',
        'end",9999999999.99,false,,2026-03-01T12:00:00.123457Z,2026-03-02T12:00:00.123456Z,'
        '"[""a,b \\""q\\"""",""日本""]",',
    ]
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


def test_export_reads_one_snapshot_and_lets_writers_go_on(source: Engine) -> None:
    # A writer that gives up after 200 ms: on SQLite, it would fail if the export held
    # the write lock (the engine's BEGIN IMMEDIATE) instead of a deferred read transaction.
    writer = create_sync_engine(make_settings(url_of(source), sqlite_busy_timeout_ms=200))
    wrote: list[int] = []

    class WriteMidway:
        def start(self, phase: str, total: int | None) -> None:
            pass

        def advance(self, phase: str, amount: int) -> None:
            if not wrote:  # after the first user was read
                with writer.begin() as connection:
                    owner = connection.execute(
                        insert(User)
                        .values(email="late@example.com", hashed_password="h")
                        .returning(User.id)
                    ).scalar_one()
                    connection.execute(
                        insert(Item).values(id=50, name="late", price=1, owner_id=owner)
                    )
                wrote.append(owner)

    try:
        during = export_bytes(source, batch_size=1, progress=WriteMidway())
    finally:
        writer.dispose()
    assert wrote
    assert b"late" not in during  # neither the user nor the item: one snapshot
    assert during.count(b'"type":"item"') == 5
    assert b"late@example.com" in export_bytes(source)


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


# --- a restore into an empty catalog indexes after loading -----------------------------------


def _indexes(engine: Engine) -> Any:
    """Every index and constraint with its definition, as the database reports them."""
    if engine.dialect.name == "postgresql":
        return schema_objects(engine)  # the GIN index's collation included
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT type, name, sql FROM sqlite_master")).all())


def test_a_restore_rebuilds_every_index_and_constraint(
    source: Engine, new_engine: EngineFactory
) -> None:
    exported = export_bytes(source)
    target = new_engine()
    schema = _indexes(target)

    # A failure after the drop: the rollback brings the indexes back too.
    last_item = exported.split(b"\n")[-3]
    broken = exported.replace(last_item, last_item.replace(b"ada@", b"ghost@"))
    with pytest.raises(LineError):
        import_bytes(target, broken)
    assert _indexes(target) == schema

    phases: list[str] = []

    class Recorder:
        def start(self, phase: str, total: int | None) -> None:
            phases.append(phase)

        def advance(self, phase: str, amount: int) -> None:
            pass

    import_bytes(target, exported, progress=Recorder())
    assert phases == ["import", "indexes"]  # the bulk path ran
    assert _indexes(target) == schema
    assert invoke(url_of(target), "db", "check").exit_code == 0
    assert snapshot(target) == snapshot(source)

    phases.clear()
    import_bytes(target, exported, progress=Recorder())
    assert phases == ["import"]  # not into a table with rows


def test_an_imported_password_ends_sessions_a_rehash_had_kept(
    source: Engine, new_engine: EngineFactory
) -> None:
    """`users.stamp_basis` (kept across a login's re-hash) is cleared when an import sets
    another password hash, and kept when the import writes the same hash."""
    exported = export_bytes(source)
    target = new_engine()
    import_bytes(target, exported)
    with target.begin() as connection:
        for email in ("ada@example.com", "bob@example.com"):
            connection.execute(
                update(User).where(User.email == email).values(stamp_basis="$argon2id$older")
            )
        # ada changes something else (the import restores it, with the same hash);
        # bob's password was re-hashed since the export (the import restores the old hash).
        connection.execute(
            update(User).where(User.email == "ada@example.com").values(full_name="Changed")
        )
        connection.execute(
            update(User)
            .where(User.email == "bob@example.com")
            .values(hashed_password=hash_password("bob-password"))
        )

    import_bytes(target, exported)

    with target.connect() as connection:
        bases = dict(connection.execute(select(User.email, User.stamp_basis)).tuples().all())
    assert bases["ada@example.com"] == "$argon2id$older"
    assert bases["bob@example.com"] is None
