"""Online migrations: `catalog db upgrade` on a populated table while writes go on.

The list-speed migrations (0007: items.tag_ids, its triggers, backfill, CHECK and GIN
index; 0008: sort indexes; 0014: folded names; 0015: links' copies of price and is_active)
must neither block the service's writes nor
lose them, and the copies they maintain must come out exact whatever the writes did
meanwhile.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from catalog.config import Settings
from catalog.migrations import runner
from catalog.migrations.runner import current_revisions
from tests.conftest import make_settings, postgresql_only, throwaway_database
from tests.test_migrations import _catalog_upgrade, revisions

ITEMS = 100_000
TAGS = 50
# The bound: no write may wait longer than this while the migration runs.
MAX_WRITE_WAIT_S = 1.0
BEFORE = "0006"  # the last revision before the list-speed migrations


@pytest.fixture
def populated(backend: str, tmp_path: Path) -> Iterator[Settings]:
    """A database at BEFORE with ITEMS items carrying 0-3 tags each."""
    import psycopg

    with throwaway_database(backend, tmp_path) as url:
        settings = make_settings(url)
        runner.upgrade(settings, BEFORE)
        with psycopg.connect(_conninfo(url)) as conn:
            conn.execute(
                "INSERT INTO users (email, hashed_password) VALUES ('owner@example.com', 'x')"
            )
            conn.execute(
                "INSERT INTO tags (name) SELECT 'tag-' || n FROM generate_series(1, %s) n",
                (TAGS,),
            )
            conn.execute(
                "INSERT INTO items (name, price, owner_id)"
                " SELECT 'item ' || n, n %% 1000, 1 FROM generate_series(1, %s) n",
                (ITEMS,),
            )
            conn.execute(
                "INSERT INTO item_tags (item_id, tag_id)"
                " SELECT DISTINCT i.id, 1 + (i.id * k * 7) %% %s FROM items i,"
                " generate_series(1, i.id %% 4) k",
                (TAGS,),
            )
        yield settings


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Writer(threading.Thread):
    """Writes as the service does, one transaction each, timing every one until stopped:
    a new item with two tags, or another item changed (name, price, is_active) and its
    tags replaced."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.created: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        import psycopg

        rng = random.Random(7)
        try:
            with psycopg.connect(_conninfo(self.url), autocommit=False) as conn:
                while not self.stop.is_set():
                    started = time.perf_counter()
                    if rng.random() < 0.5:
                        row = conn.execute(
                            "INSERT INTO items (name, price, owner_id)"
                            " VALUES ('written during the migration', 1, 1) RETURNING id"
                        ).fetchone()
                        assert row is not None
                        first, second = rng.sample(range(1, TAGS + 1), 2)
                        conn.execute(
                            "INSERT INTO item_tags (item_id, tag_id) VALUES (%s, %s), (%s, %s)",
                            (row[0], first, row[0], second),
                        )
                        self.created.append(row[0])
                    else:
                        item = rng.randint(1, ITEMS)
                        conn.execute(
                            "UPDATE items SET version = version + 1, name = %s, price = %s,"
                            " is_active = %s WHERE id = %s",
                            (
                                f"RENAMED Ärmel {item}",
                                rng.randint(0, 999),
                                rng.random() < 0.5,
                                item,
                            ),
                        )
                        conn.execute("DELETE FROM item_tags WHERE item_id = %s", (item,))
                        conn.execute(
                            "INSERT INTO item_tags (item_id, tag_id)"
                            " SELECT %s, t FROM generate_series(1, %s) t",
                            (item, rng.randint(0, 4)),
                        )
                    conn.commit()
                    self.latencies.append(time.perf_counter() - started)
        except BaseException as error:  # reported by the test
            self.error = error


@pytest.mark.slow
@postgresql_only
def test_upgrade_under_writes_neither_blocks_nor_loses_them(populated: Settings) -> None:
    import psycopg

    writer = Writer(populated.database_url)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while len(writer.latencies) < 20:  # writing before the migration starts
            assert writer.is_alive(), writer.error
            assert time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.01)
        upgrade = _catalog_upgrade(populated.database_url)
        code = upgrade.wait(timeout=600)
        during = len(writer.latencies)
        while len(writer.latencies) < during + 20:  # and after it
            assert writer.is_alive(), writer.error
            assert time.monotonic() < deadline + 600, "the writer stopped writing"
            time.sleep(0.01)
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert code == 0, upgrade.communicate()
    assert writer.error is None, writer.error
    assert current_revisions(populated) == (revisions()[-1],)
    slowest = max(writer.latencies)
    # Shown with -s: how many writes the migration ran alongside, and the slowest.
    print(f"{len(writer.latencies)} writes ({during} until done), slowest {slowest:.3f} s")
    assert slowest < MAX_WRITE_WAIT_S, f"a write waited {slowest:.2f} s"
    with psycopg.connect(_conninfo(populated.database_url)) as conn:
        items = conn.execute("SELECT count(*) FROM items").fetchone()
        assert items == (ITEMS + len(writer.created),)  # none lost
        stale = conn.execute(
            "SELECT count(*) FROM items i WHERE tag_ids IS DISTINCT FROM coalesce("
            " (SELECT array_agg(tag_id ORDER BY tag_id) FROM item_tags l WHERE l.item_id = i.id),"
            " '{}')"
        ).fetchone()
        assert stale == (0,)  # the copy of the tags is exact, writes during the backfill too
        unfolded = conn.execute(
            "SELECT count(*) FROM items"
            ' WHERE name_folded IS DISTINCT FROM lower(name COLLATE "default")'
        ).fetchone()
        assert unfolded == (0,)  # so are the folded names (0014), renamed ones too
        uncopied = conn.execute(
            "SELECT count(*) FROM item_tags l JOIN items i ON i.id = l.item_id"
            " WHERE (l.price, l.is_active) IS DISTINCT FROM (i.price, i.is_active)"
        ).fetchone()
        assert uncopied == (0,)  # and the links' copies of price and is_active (0015)
        invalid = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass AND NOT indisvalid"
        ).fetchone()
        assert invalid == (0,)
