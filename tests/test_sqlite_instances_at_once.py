"""SQLite: several instances starting together on one file (`catalog db upgrade`, then
`catalog serve`), each step of which met another's lock in CI.

SQLite has one write lock per file. The switch to WAL refuses at once, without the busy
handler, while another connection writes; every transaction of ours takes the lock up
front (BEGIN IMMEDIATE), so a check that only reads waited for it. These tests hold the
lock the way another instance would and check that each step waits, keeps it, or does not
need it at all.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from catalog.backup import refuse_incomplete_restore
from catalog.db.engine import create_sync_engine, read_once
from catalog.migrations import runner
from tests.conftest import make_settings
from tests.waiting import eventually_sync


def _head() -> str:
    head = ScriptDirectory.from_config(runner.alembic_config()).get_current_head()
    assert head is not None
    return head


def _in_thread(work: Any, name: str) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `work()` in a thread named `name`; its result or error lands in the dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # collected: a thread's exception would be lost
            outcome["error"] = error

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, outcome


def test_the_switch_to_wal_waits_for_another_connections_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh file is switched to WAL by its first connections. While another connection
    writes, SQLite refuses the switch at once ("database is locked", no busy handler): the
    connection retries within the busy timeout instead of failing (1 in 25 did, 4 processes
    opening a fresh file together)."""
    path = tmp_path / "fresh.db"
    writer = sqlite3.connect(path, isolation_level=None)  # as another process: no WAL yet
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    retried = threading.Event()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if threading.current_thread().name == "connecting":
            retried.set()
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)  # the retry's pause (db/backends.py)
    engine = create_sync_engine(make_settings(f"sqlite:///{path}", sqlite_busy_timeout_ms=60_000))

    def journal_mode() -> object:
        with engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA journal_mode").scalar()

    try:
        thread, outcome = _in_thread(journal_mode, "connecting")
        eventually_sync(
            lambda: retried.is_set() or not thread.is_alive() or None,
            what="the connection refused the switch once, or finished",
        )
        writer.execute("COMMIT")
        thread.join(timeout=60)
    finally:
        writer.close()
        engine.dispose()
    assert outcome == {"result": "wal"}


def _pausing_migrations(tmp_path: Path, down_revision: str) -> Path:
    """A copy of the migrations with one more, which waits inside the upgrade until told."""
    copy = tmp_path / "migrations"
    shutil.copytree(runner.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "versions" / "99990101_9999_pause.py").write_text(
        f'''"""Waits, inside the upgrade, until the test has looked."""
from alembic import context

revision = "9999"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    reached, go = context.config.attributes["pause"]
    reached.set()
    assert go.wait(60), "the test never let the migration go on"


def downgrade() -> None:
    pass
'''
    )
    return copy


def test_an_upgrade_is_one_write_transaction_from_version_to_last_migration(
    tmp_path: Path,
) -> None:
    """The write lock is SQLite's migration lock, so it must be held from reading the
    version to the last migration. Alembic commits after each migration on SQLite unless
    told otherwise: another instance then read a half-way version and ran the same
    migrations again (CI: 1 of 4 instances failed). Here, paused in the last migration,
    another connection sees none of the earlier ones."""
    settings = make_settings(f"sqlite:///{tmp_path / 'one.db'}")
    config = runner.alembic_config(settings, _pausing_migrations(tmp_path, _head()))
    reached, go = threading.Event(), threading.Event()
    config.attributes["pause"] = (reached, go)
    thread, outcome = _in_thread(lambda: command.upgrade(config, "head"), "migrating")
    try:
        eventually_sync(
            lambda: reached.is_set() or not thread.is_alive() or None,
            what="the upgrade reached its last migration",
        )
        observer = sqlite3.connect(tmp_path / "one.db", isolation_level=None)
        try:
            seen = observer.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            ).fetchall()
        finally:
            observer.close()
    finally:
        go.set()
        thread.join(timeout=60)
    assert (seen, outcome) == ([], {"result": None})
    assert runner.current_revisions(settings) == ("9999",)


def test_the_checks_around_an_upgrade_read_without_the_write_lock(tmp_path: Path) -> None:
    """`catalog db upgrade` checks for an unfinished restore and reports the revision;
    `catalog serve` checks too. They only read, so another instance's migration (which
    holds the write lock, on a large file for minutes) must not make them wait, let alone
    fail after the busy timeout: here it is 0, and they succeed while the lock is held."""
    settings = make_settings(f"sqlite:///{tmp_path / 'checked.db'}")
    runner.upgrade(settings)
    impatient = settings.model_copy(update={"sqlite_busy_timeout_ms": 0})
    migrating = sqlite3.connect(tmp_path / "checked.db", isolation_level=None)
    try:
        migrating.execute("BEGIN IMMEDIATE")
        read_once(impatient, refuse_incomplete_restore)  # raises if it could not read
        revisions = runner.current_revisions(impatient)
    finally:
        migrating.close()
    assert revisions == (_head(),)
