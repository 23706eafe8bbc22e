"""The sample catalog the transfer tests export and import, and helpers to look at it."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, func, insert, select, update

from catalog.db.engine import create_sync_engine
from catalog.migrations.runner import upgrade
from catalog.models import Item, Tag, User, item_tags
from catalog.security import hash_password
from catalog.transfer import Format, ImportReport, export_catalog, import_catalog
from tests.conftest import make_settings, throwaway_database

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


def migrated_engine(stack: ExitStack, backend: str, tmp_path: Path) -> Engine:
    """A migrated, empty throwaway database, dropped (engine disposed) when `stack` closes."""
    url = stack.enter_context(throwaway_database(backend, tmp_path))
    upgrade(make_settings(url))
    engine = create_sync_engine(make_settings(url))
    stack.callback(engine.dispose)
    return engine
