"""`catalog db backup` / `restore` on both databases: round trips, refusals, bad files, faults."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.backup import MARKER_TABLE, RestoreIncompleteError
from catalog.migrations.runner import upgrade
from tests.backup.helpers import (
    catalog,
    contents,
    files_in,
    marked,
    ok,
    one_line_error,
    tables,
)
from tests.conftest import make_settings, postgresql_only, throwaway_database


@pytest.fixture
def seeded_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's backend holding users, tags, items and links."""
    with throwaway_database(backend, tmp_path) as url:
        upgrade(make_settings(url))
        ok(catalog(url, "seed", "--users", "3", "--tags", "6", "--items", "500"))
        yield url


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's backend (a PostgreSQL one exists, with no tables)."""
    with throwaway_database(backend, tmp_path) as url:
        yield url


def backup(url: str, to: Path) -> Path:
    result = ok(catalog(url, "db", "backup", "--to", str(to)))
    written = Path(result.stdout.strip())
    assert written.is_file()
    assert "Backed up" in result.stderr
    return written


def test_a_restore_gives_back_exactly_what_was_backed_up(
    seeded_url: str, fresh_url: str, tmp_path: Path
) -> None:
    before = contents(seeded_url)
    assert len(before["item_tags"]) > 0
    (tmp_path / "backups").mkdir()
    written = backup(seeded_url, tmp_path / "backups")
    # Only the backup itself, under a timestamped name: no leftover partial file.
    assert files_in(tmp_path / "backups") == [written.name]
    result = ok(catalog(seeded_url, "db", "restore", str(written), "--into", fresh_url))
    assert "Restored" in result.stderr
    assert contents(fresh_url) == before
    ok(catalog(fresh_url, "db", "check"))  # the restored schema is the code's, unmarked


def test_a_restore_refuses_a_non_empty_database_without_force(
    seeded_url: str, tmp_path: Path
) -> None:
    written = backup(seeded_url, tmp_path / "one.bak")
    before = contents(seeded_url)
    ok(catalog(seeded_url, "seed", "--users", "1", "--tags", "1", "--items", "10"))
    changed = contents(seeded_url)
    refused = catalog(seeded_url, "db", "restore", str(written))
    one_line_error(refused, "is not empty", "--force")
    assert contents(seeded_url) == changed
    ok(catalog(seeded_url, "db", "restore", str(written), "--force"))
    assert contents(seeded_url) == before


def test_a_backup_never_overwrites_a_file(seeded_url: str, tmp_path: Path) -> None:
    existing = tmp_path / "taken.bak"
    existing.write_text("someone's file")
    one_line_error(catalog(seeded_url, "db", "backup", "--to", str(existing)), "already exists")
    assert existing.read_text() == "someone's file"


# --- bad files: a clear error, nothing restored ----------------------------------------------


def _truncated(good: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "truncated.bak"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    return bad


def _corrupt(good: Path, tmp_path: Path) -> Path:
    data = bytearray(good.read_bytes())
    for offset in range(len(data) // 3, len(data) * 2 // 3, 97):
        data[offset] ^= 0x5A
    bad = tmp_path / "corrupt.bak"
    bad.write_bytes(bytes(data))
    return bad


def _not_a_backup(good: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "notes.txt"
    bad.write_text("some notes, not a backup\n" * 100)
    return bad


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncated, "damaged (truncated or corrupt)"),
        (_corrupt, "damaged (truncated or corrupt)"),
        (_not_a_backup, "not a Catalog backup"),
    ],
    ids=["truncated", "corrupt", "not-a-backup"],
)
def test_a_damaged_file_is_refused_and_nothing_is_restored(
    seeded_url: str, fresh_url: str, tmp_path: Path, damage: object, message: str
) -> None:
    good = backup(seeded_url, tmp_path / "good.bak")
    bad = damage(good, tmp_path)  # type: ignore[operator]
    result = catalog(seeded_url, "db", "restore", str(bad), "--into", fresh_url)
    one_line_error(result, str(bad), message)
    assert tables(fresh_url) == set()


def test_a_backup_of_another_application_is_refused(
    backend: str, fresh_url: str, tmp_path: Path
) -> None:
    with throwaway_database(backend, tmp_path) as other:
        # Another application's database: tables, but not Catalog's.
        from sqlalchemy import text

        from catalog.db.engine import create_sync_engine

        engine = create_sync_engine(make_settings(other))
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INT)"))
            connection.execute(text("INSERT INTO invoices VALUES (1, 10)"))
        engine.dispose()
        foreign = backup(other, tmp_path / "invoices.bak")
    result = catalog(fresh_url, "db", "restore", str(foreign), "--into", fresh_url)
    one_line_error(result, "not a Catalog backup", "no alembic_version, item_tags, items")
    assert tables(fresh_url) == set()


def test_a_backup_of_the_other_database_kind_is_refused(
    backend: str, fresh_url: str, tmp_path: Path
) -> None:
    other_backend = "postgresql" if backend == "sqlite" else "sqlite"
    with throwaway_database(other_backend, tmp_path) as other:
        upgrade(make_settings(other))
        foreign = backup(other, tmp_path / "other.bak")
    result = catalog(fresh_url, "db", "restore", str(foreign), "--into", fresh_url)
    one_line_error(result, "backup; the target database is")
    assert tables(fresh_url) == set()


# --- a full disk: no file that looks complete --------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 KiB tmpfs: too small for the seeded database's backup. Unmounted afterwards."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8k,mode=0777", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


def test_a_full_disk_leaves_no_file_that_looks_complete(seeded_url: str, small_disk: Path) -> None:
    result = catalog(seeded_url, "db", "backup", "--to", str(small_disk))
    one_line_error(result)
    assert "space" in result.stderr or "full" in result.stderr, result.stderr
    assert files_in(small_disk) == []  # not even the partial file


# --- an interrupted restore: marked, and refused by everything that would serve it -----------

# Restores `argv[1]` into `argv[2]` and kills itself (SIGKILL: no clean-up runs) as soon as
# the restore reports its first progress: a restore that stops part-way, for real.
KILLED_RESTORE = """
import os, signal, sys
from pathlib import Path
from catalog.backup import restore_database, sqlite
sqlite.STEP_PAGES = 8  # many steps, so the first report comes long before the last
class Kill:
    def start(self, phase, total): pass
    def advance(self, phase, amount): os.kill(os.getpid(), signal.SIGKILL)
restore_database(Path(sys.argv[1]), sys.argv[2], force=True, progress=Kill())
"""


def test_an_interrupted_restore_leaves_the_target_marked_and_unserved(
    backend: str, seeded_url: str, fresh_url: str, tmp_path: Path
) -> None:
    written = backup(seeded_url, tmp_path / "good.bak")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RESTORE, str(written), fresh_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    assert marked(fresh_url)
    if backend == "sqlite":  # one transaction: rolled back to the (empty) target, and the mark
        assert tables(fresh_url) == {MARKER_TABLE}
    one_line_error(catalog(fresh_url, "db", "check"), "unfinished restore")
    one_line_error(catalog(fresh_url, "db", "upgrade"), "unfinished restore")
    one_line_error(catalog(fresh_url, "db", "backup", "--to", str(tmp_path)), "unfinished restore")
    port = str(_free_port())
    served = catalog(fresh_url, "serve", "--port", port)
    one_line_error(served, "not serving", "unfinished restore", "--force")
    _app_refuses_to_start(fresh_url)
    # The way out: the same restore, run to its end.
    ok(catalog(fresh_url, "db", "restore", str(written), "--force"))
    assert not marked(fresh_url)
    assert contents(fresh_url) == contents(seeded_url)


def _free_port() -> int:
    from deploy.ports import free_port

    return free_port()


def _app_refuses_to_start(url: str) -> None:
    """The app itself (any ASGI server, not only `catalog serve`) refuses at startup."""
    import asyncio

    from catalog.api.app import create_app

    app = create_app(make_settings(url))

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(RestoreIncompleteError, match="unfinished restore"):
        asyncio.run(start())


@postgresql_only  # SQLite restores in one transaction: the kill above covers it
def test_a_restore_that_fails_part_way_leaves_the_target_marked(
    seeded_url: str, fresh_url: str, tmp_path: Path
) -> None:
    """A failure inside pg_restore (here: the server refusing to build the indexes, after
    the data is in) leaves the mark, never a database that looks restored."""
    written = backup(seeded_url, tmp_path / "good.bak")
    from sqlalchemy import text

    from catalog.db.engine import create_sync_engine

    engine = create_sync_engine(make_settings(fresh_url))
    with engine.begin() as connection:
        connection.execute(text("CREATE SCHEMA guard"))  # outside public, which a restore drops
        connection.execute(
            text(
                "CREATE FUNCTION guard.no_indexes() RETURNS event_trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'no indexes today'; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE EVENT TRIGGER no_indexes ON ddl_command_start "
                "WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION guard.no_indexes()"
            )
        )
    engine.dispose()
    result = catalog(fresh_url, "db", "restore", str(written), "--into", fresh_url)
    one_line_error(result, "pg_restore failed", "no indexes today", "marked unusable")
    assert marked(fresh_url)
    assert "items" in tables(fresh_url)  # the data got in: half-restored, and marked
    one_line_error(catalog(fresh_url, "db", "check"), "unfinished restore")
