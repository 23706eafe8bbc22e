"""Demo data: the generators (pure) and `catalog seed` on both databases."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import Engine, func, insert, select
from typer.testing import CliRunner, Result

from catalog import seed as seeding
from catalog.cli import app
from catalog.config import get_settings
from catalog.db.database import SyncDatabase
from catalog.db.engine import create_sync_engine
from catalog.migrations.runner import upgrade
from catalog.models import Item, Tag, User, item_tags
from catalog.schemas import PRICE_LIMIT, Email, normalize_tag_name
from catalog.security import verify_password
from catalog.seed import (
    DEMO_PASSWORD,
    SeedError,
    SeedOptions,
    generate_items,
    generate_users,
    seed_database,
    tag_names,
)
from tests.conftest import SECRET, make_settings, schema_objects, throwaway_database

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
SMALL = ("--users", "20", "--tags", "10", "--items", "200", "--as-of", "2026-01-01")
cli = CliRunner()


# --- generation (no database) ------------------------------------------------------------


def test_vocabularies_need_no_copy_escaping() -> None:
    words = [
        *seeding.FIRST_NAMES,
        *seeding.LAST_NAMES,
        *seeding.ADJECTIVES,
        *seeding.MATERIALS,
        *seeding.NOUNS,
        *seeding.FEATURES,
        *seeding.CLOSINGS,
        *seeding.TAG_WORDS,
    ]
    assert not [word for word in words if {"\t", "\n", "\r", "\\"} & set(word)]


@pytest.mark.parametrize("count", [0, 5, 72, 300, 6000])
def test_tag_names_are_distinct_normalized_and_deterministic(count: int) -> None:
    names = tag_names(count, seed=3)
    assert len(names) == count == len(set(names))
    assert all(normalize_tag_name(name) == name for name in names)
    assert names == tag_names(count, seed=3)


def test_tag_names_depend_on_the_seed() -> None:
    assert tag_names(10, seed=1) != tag_names(10, seed=2)


def _items(seed: int, count: int = 2000) -> list[seeding.ItemRow]:
    return list(
        generate_items(
            1, count, seed=seed, owner_ids=range(1, 11), tag_ids=list(range(1, 6)), as_of=AS_OF
        )
    )


def test_generated_items_are_plausible() -> None:
    items = _items(seed=7)
    assert [row[0] for row in items] == list(range(1, 2001))
    for _, name, description, cents, _, created_at, owner, tags in items:
        assert 1 <= len(name) <= 200
        assert description is None or len(description) <= 2000
        assert 0 <= cents < PRICE_LIMIT * 100
        assert AS_OF - seeding.YEAR <= created_at <= AS_OF
        assert 1 <= owner <= 10
        assert len(tags) <= 3
        assert len(set(tags)) == len(tags)
        assert set(tags) <= {1, 2, 3, 4, 5}
    assert {len(row[7]) for row in items} == {0, 1, 2, 3}
    assert {row[4] for row in items} == {True, False}  # some inactive
    assert any(row[2] is None for row in items)
    created = [row[5] for row in items]
    assert created == sorted(created)  # later ids are newer


def test_generated_items_are_deterministic_per_seed() -> None:
    assert _items(seed=1) == _items(seed=1)
    assert _items(seed=1) != _items(seed=2)


def test_generated_users_have_valid_unique_emails() -> None:
    users = list(generate_users(5, 300, seed=1, hashed_password="h", as_of=AS_OF))
    emails = [row[1] for row in users]
    assert len(set(emails)) == 300
    adapter = TypeAdapter(Email)
    assert all(adapter.validate_python(email) == email for email in emails)
    assert users == list(generate_users(5, 300, seed=1, hashed_password="h", as_of=AS_OF))


@pytest.mark.parametrize(
    "options",
    [
        {"users": -1, "items": 0, "tags": 0},
        {"users": 0, "items": 0, "tags": 0, "batch_size": 0},
        {"users": 0, "items": 0, "tags": 0, "as_of": datetime(2026, 1, 1)},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(SeedError):
        SeedOptions(**options)


# --- against a database ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def migrated_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with throwaway_database(backend, tmp_path) as url:
        upgrade(make_settings(url))
        yield url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = create_sync_engine(make_settings(migrated_url))
    yield engine
    engine.dispose()


def invoke(url: str, *args: str) -> Result:
    get_settings.cache_clear()
    try:
        env = {"DATABASE_URL": url, "SECRET_KEY": SECRET, "ENVIRONMENT": "test"}
        return cli.invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


def seed_ok(url: str, *args: str) -> Result:
    result = invoke(url, "seed", *args)
    assert result.exit_code == 0, result.output
    return result


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: connection.scalar(select(func.count()).select_from(table)) or 0
            for name, table in (("users", User), ("tags", Tag), ("items", Item))
        } | {"item_tags": connection.scalar(select(func.count()).select_from(item_tags)) or 0}


def snapshot(engine: Engine) -> dict[str, Sequence[Any]]:
    """Every seeded value (but the salted password hash), in id order."""
    with engine.connect() as connection:
        return {
            "users": connection.execute(
                select(
                    User.id,
                    User.email,
                    User.full_name,
                    User.is_active,
                    User.is_superuser,
                    User.created_at,
                ).order_by(User.id)
            ).all(),
            "tags": connection.execute(select(Tag.id, Tag.name).order_by(Tag.id)).all(),
            "items": connection.execute(
                select(
                    Item.id,
                    Item.name,
                    Item.description,
                    Item.price,
                    Item.is_active,
                    Item.created_at,
                    Item.updated_at,
                    Item.owner_id,
                ).order_by(Item.id)
            ).all(),
            "item_tags": connection.execute(
                select(item_tags.c.item_id, item_tags.c.tag_id).order_by(
                    item_tags.c.item_id, item_tags.c.tag_id
                )
            ).all(),
        }


def test_seed_inserts_exactly_what_was_asked(migrated_url: str, engine: Engine) -> None:
    result = seed_ok(migrated_url, *SMALL, "--seed", "5")
    assert "demo-password" in result.stdout

    found = counts(engine)
    assert {k: found[k] for k in ("users", "tags", "items")} == {
        "users": 20,
        "tags": 10,
        "items": 200,
    }
    assert f"{found['item_tags']:,}" in result.stdout
    data = snapshot(engine)
    per_item: dict[int, int] = {}
    for item_id, _ in data["item_tags"]:
        per_item[item_id] = per_item.get(item_id, 0) + 1
    assert max(per_item.values()) <= 3
    assert len(per_item) < 200  # some items have no tag
    user_ids = {row.id for row in data["users"]}
    for item in data["items"]:
        assert item.owner_id in user_ids
        assert isinstance(item.price, Decimal)
        assert 0 <= item.price < PRICE_LIMIT
        assert item.price == item.price.quantize(Decimal("0.01"))
        assert AS_OF - seeding.YEAR <= item.created_at <= AS_OF
        assert item.updated_at is None
    assert {item.is_active for item in data["items"]} == {True, False}
    with engine.connect() as connection:
        hashes = set(connection.scalars(select(User.hashed_password)))
    assert len(hashes) == 1  # hashed once, shared
    assert verify_password(DEMO_PASSWORD, hashes.pop())


def test_seed_is_deterministic_per_seed(backend: str, tmp_path: Path) -> None:
    snapshots = []
    # A different batch size must not change the rows either.
    for batch_size in ("7", "10000"):
        with throwaway_database(backend, tmp_path) as url:
            upgrade(make_settings(url))
            seed_ok(url, *SMALL, "--seed", "42", "--batch-size", batch_size)
            engine = create_sync_engine(make_settings(url))
            try:
                snapshots.append(snapshot(engine))
            finally:
                engine.dispose()
    assert snapshots[0] == snapshots[1]


def test_different_seeds_give_different_rows(migrated_url: str, engine: Engine) -> None:
    seed_ok(migrated_url, *SMALL, "--seed", "1")
    first = snapshot(engine)["items"]
    seed_ok(migrated_url, *SMALL, "--seed", "2")
    second = snapshot(engine)["items"][200:]
    assert [row[1:] for row in first] != [row[1:] for row in second]


def test_seeding_twice_adds_rows_and_reuses_tags(migrated_url: str, engine: Engine) -> None:
    seed_ok(migrated_url, *SMALL, "--seed", "9")
    second = seed_ok(migrated_url, *SMALL, "--seed", "9")
    assert "0 / 10" in second.stdout  # no new tag, ten reused
    found = counts(engine)
    assert (found["users"], found["tags"], found["items"]) == (40, 10, 400)
    data = snapshot(engine)
    assert len({row.email for row in data["users"]}) == 40
    assert [row.id for row in data["items"]] == list(range(1, 401))

    # More tag names from the same seed: the first ten are reused, five are new.
    third = seed_ok(migrated_url, "--users", "0", "--tags", "15", "--items", "10", "--seed", "9")
    assert "5 / 15" in third.stdout
    assert counts(engine)["tags"] == 15


def test_ordinary_inserts_continue_after_seeded_ids(migrated_url: str, engine: Engine) -> None:
    seed_ok(migrated_url, *SMALL)
    with engine.begin() as connection:
        user_id = connection.execute(
            insert(User).values(email="after@example.com", hashed_password="x").returning(User.id)
        ).scalar_one()
        item_id = connection.execute(
            insert(Item)
            .values(name="after", price=Decimal("1.00"), owner_id=user_id)
            .returning(Item.id)
        ).scalar_one()
    assert (user_id, item_id) == (21, 201)


def test_items_without_users_go_to_existing_users(migrated_url: str, engine: Engine) -> None:
    seed_ok(migrated_url, "--users", "3", "--tags", "0", "--items", "0")
    seed_ok(migrated_url, "--users", "0", "--tags", "2", "--items", "50")
    found = counts(engine)
    assert (found["users"], found["items"]) == (3, 50)
    with engine.connect() as connection:
        owners = set(connection.scalars(select(Item.owner_id)))
    assert owners <= {1, 2, 3}


def test_items_without_any_user_is_an_error(migrated_url: str, engine: Engine) -> None:
    result = invoke(migrated_url, "seed", "--users", "0", "--items", "5")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: items need owners: there are no users, pass --users N"
    ]
    assert counts(engine) == {"users": 0, "tags": 0, "items": 0, "item_tags": 0}


# --- PostgreSQL's bulk path: indexes dropped and rebuilt in the same transaction ----------


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A migrated PostgreSQL database, whatever the backend parameter."""
    with throwaway_database("postgresql", tmp_path) as url:
        upgrade(make_settings(url))
        yield url


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = create_sync_engine(make_settings(pg_url))
    yield engine
    engine.dispose()


def test_bulk_load_restores_every_index_and_constraint(
    pg_url: str, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = pg_engine
    before = schema_objects(engine)
    monkeypatch.setattr(seeding, "BULK_LOAD_MIN_ROWS", 1)
    result = seed_ok(pg_url, *SMALL)
    assert "indexes" in result.stderr  # the bulk path ran
    assert schema_objects(engine) == before
    assert counts(engine)["items"] == 200
    assert invoke(pg_url, "db", "check").exit_code == 0


def test_failed_bulk_load_leaves_nothing_behind(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = pg_engine
    before = schema_objects(engine)
    monkeypatch.setattr(seeding, "BULK_LOAD_MIN_ROWS", 1)

    def broken(*args: Any, **kwargs: Any) -> Iterator[seeding.ItemRow]:
        yield from list(generate_items(*args, **kwargs))[:5]
        raise RuntimeError("generator failed")

    monkeypatch.setattr(seeding, "generate_items", broken)
    database = SyncDatabase(engine)
    options = SeedOptions(users=2, items=10, tags=2, as_of=AS_OF)
    with pytest.raises(RuntimeError), database.session_scope() as session:
        seed_database(session, options)
    assert schema_objects(engine) == before
    assert counts(engine) == {"users": 0, "tags": 0, "items": 0, "item_tags": 0}
