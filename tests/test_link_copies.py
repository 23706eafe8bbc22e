"""Migration 0015: each link carries its item's price and is_active (PostgreSQL).

The copies have no model, so the drift check cannot see them: these tests pin what the
triggers keep, whatever writes, and that a one-tag page sorted by price reads the links'
own index. Lists answering from the copies under concurrent writes: tests/api/test_tag_ids.py.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError

from catalog.pagination import order_by, parse_sort
from catalog.services import link_walk
from catalog.services.item_listing import ITEM_SORT_FIELDS
from tests.test_migrations import migrated_postgresql

_STALE = text(
    "SELECT count(*) FROM item_tags l JOIN items i ON i.id = l.item_id"
    " WHERE (l.price, l.is_active) IS DISTINCT FROM (i.price, i.is_active)"
)


def _start(connection: Connection) -> None:
    connection.execute(
        text("INSERT INTO users (id, email, hashed_password) VALUES (1, 'o@example.com', 'x')")
    )
    connection.execute(text("INSERT INTO tags (id, name) VALUES (1, 'red'), (2, 'blue')"))
    connection.execute(
        text(
            "INSERT INTO items (id, name, price, is_active, owner_id) VALUES"
            " (1, 'lamp', 10, true, 1), (2, 'desk', 20, false, 1)"
        )
    )


def _copies(connection: Connection) -> list[tuple[object, ...]]:
    rows = connection.execute(
        text("SELECT item_id, tag_id, price, is_active FROM item_tags ORDER BY item_id, tag_id")
    )
    return [tuple(row) for row in rows]


def test_links_copy_their_items_price_and_is_active_however_written(tmp_path: Path) -> None:
    with migrated_postgresql(tmp_path) as (_, engine), engine.begin() as connection:
        _start(connection)
        connection.execute(text("INSERT INTO item_tags (item_id, tag_id) VALUES (1, 1), (2, 1)"))
        connection.execute(text("UPDATE items SET price = 11.5 WHERE id = 1"))
        connection.execute(text("UPDATE items SET is_active = true WHERE id = 2"))
        # An item changed and linked in one statement, as the service's PATCH does.
        connection.execute(
            text(
                "WITH changed AS (UPDATE items SET price = 30, is_active = false WHERE id = 2"
                " RETURNING id) INSERT INTO item_tags (item_id, tag_id)"
                " SELECT id, 2 FROM changed"
            )
        )
        connection.execute(
            text("UPDATE item_tags SET item_id = 1 WHERE (item_id, tag_id) = (2, 2)")
        )
        assert connection.execute(_STALE).scalar_one() == 0
        assert _copies(connection) == [
            (1, 1, Decimal("11.50"), True),
            (1, 2, Decimal("11.50"), True),
            (2, 1, Decimal("30.00"), False),
        ]


def test_a_copy_written_by_hand_is_read_again_from_its_item(tmp_path: Path) -> None:
    with migrated_postgresql(tmp_path) as (_, engine), engine.begin() as connection:
        _start(connection)
        connection.execute(text("INSERT INTO item_tags (item_id, tag_id) VALUES (1, 1)"))
        connection.execute(text("UPDATE item_tags SET price = 0, is_active = false"))
        assert _copies(connection) == [(1, 1, Decimal("10.00"), True)]


def test_a_price_change_writes_its_item_once(tmp_path: Path) -> None:
    """The links' update must not make 0007's trigger rewrite the item's tag_ids again
    (and lock it FOR UPDATE): one row version of the item per change."""
    updated = text("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = :table")
    with migrated_postgresql(tmp_path) as (_, engine), engine.begin() as connection:
        _start(connection)
        connection.execute(text("INSERT INTO item_tags (item_id, tag_id) VALUES (1, 1), (1, 2)"))
        items_before = connection.execute(updated, {"table": "items"}).scalar_one()
        links_before = connection.execute(updated, {"table": "item_tags"}).scalar_one()
        connection.execute(text("UPDATE items SET price = 12 WHERE id = 1"))
        items_after = connection.execute(updated, {"table": "items"}).scalar_one()
        links_after = connection.execute(updated, {"table": "item_tags"}).scalar_one()
        assert (items_after - items_before, links_after - links_before) == (1, 2)
        assert connection.execute(_STALE).scalar_one() == 0


def test_a_link_to_no_item_is_refused_by_the_foreign_key(tmp_path: Path) -> None:
    """The copy trigger finds no item to copy from: the foreign key's error, not a NULL's."""
    with migrated_postgresql(tmp_path) as (_, engine), engine.begin() as connection:
        _start(connection)
        with pytest.raises(IntegrityError, match="fk_item_tags_item_id_items"):
            connection.execute(text("INSERT INTO item_tags (item_id, tag_id) VALUES (99, 1)"))


def test_one_tags_page_by_price_reads_the_links_index(tmp_path: Path) -> None:
    """The page's cut as the service compiles it is answered by the index alone."""
    names = frozenset({"is_active", "min_price", "max_price"})
    sort = parse_sort("-price", ITEM_SORT_FIELDS)
    fields = link_walk.link_sort_fields(ITEM_SORT_FIELDS)
    page = (
        select(*link_walk.KEY_COLUMNS)
        .where(*link_walk.link_conditions(names, (1,)))
        .order_by(*order_by(sort, fields))
        .limit(51)
        .params(tag_name_0="red", is_active=True, min_price=1, max_price=100)
    )
    with migrated_postgresql(tmp_path) as (_, engine), engine.connect() as connection:
        sql = str(page.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        for scan in ("seqscan", "bitmapscan"):  # left: the index scans, if they apply
            connection.execute(text(f"SET enable_{scan} = off"))
        plan = "\n".join(connection.execute(text(f"EXPLAIN {sql}")).scalars())
    assert "Index Only Scan Backward using ix_item_tags_tag_id_price_item_id" in plan, plan
