"""No hidden queries: every endpoint sends a fixed number of statements, whatever the data.

Each endpoint is measured on a page (or write) of 1 and of 100 items carrying 5 tags each,
spread over 20 owners, and the counts are pinned. A change that adds a statement per row
(N+1) or per tag makes the two sizes differ; one that adds a round trip to every request
changes the pinned number, which is then a deliberate decision.

What is counted: every statement SQLAlchemy hands to the driver (`count_statements`), plus,
on PostgreSQL, every query sent on the raw asyncpg connection outside SQLAlchemy's cursor
(reads run straight on asyncpg, and asyncpg's own BEGIN/COMMIT). On SQLite the driver's
implicit COMMIT is not a statement and is not seen, hence per-backend numbers for writes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asyncpg.prepared_stmt import PreparedStatement
from sqlalchemy import event, insert, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import RelationshipProperty

from catalog.db.base import Base
from catalog.db.database import Database
from catalog.models import Item, Tag, User, item_tags
from tests.conftest import Account, MakeUser, StatementCounter

TAGS_PER_ITEM = 5
OWNERS = 20
ITEMS = 200  # the big owner has 100 of them, "common" is on all of them
TAG_POOL = 120  # more than a page of /tags


# asyncpg's own type introspection, run once per connection the first time it meets a
# type (then cached): connection setup, not per-request work. It turns JIT off around
# the introspection and then sets it back (`set_config('jit', $1, false)`), which behind
# PgBouncer's transaction mode arrives as a statement of its own.
_INTROSPECTION = ("typeinfo_tree", "current_setting('jit')", "set_config('jit', $1, false)")


@dataclass
class SqlLog:
    """Statements that reached the database driver during a measured request."""

    sqlalchemy: StatementCounter
    driver: list[str] = field(default_factory=list)
    # executemany() statements SQLAlchemy already counted, which asyncpg logs again.
    executemany: list[str] = field(default_factory=list)

    @property
    def statements(self) -> list[str]:
        return [*self.sqlalchemy.statements, *self.driver]

    def reset(self) -> None:
        self.sqlalchemy.reset()
        self.driver.clear()
        self.executemany.clear()

    def before_execute(self, *args: Any) -> None:
        """SQLAlchemy before_cursor_execute listener: remember executemany statements."""
        statement, executemany = args[2], args[-1]
        if executemany:
            self.executemany.append(statement)

    def logged(self, record: Any) -> None:
        """asyncpg query logger callback."""
        if record.query in self.executemany:
            self.executemany.remove(record.query)
        elif not any(marker in record.query for marker in _INTROSPECTION):
            self.driver.append(record.query)


@pytest.fixture
def sql(
    database: Database, count_statements: StatementCounter, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SqlLog]:
    """`count_statements`, completed on PostgreSQL by a logger on each asyncpg connection."""
    log = SqlLog(count_statements)
    if database.backend.name != "postgresql":
        yield log
        return
    # asyncpg's query loggers do not see a statement run through `Connection.prepare` (a
    # statement planned for its values, `CompiledQuery.custom_plan`): count those here.
    run_prepared = PreparedStatement.fetch

    async def _fetch(statement: PreparedStatement, *args: Any, **kwargs: Any) -> Any:
        log.driver.append(statement.get_query())
        return await run_prepared(statement, *args, **kwargs)

    monkeypatch.setattr(PreparedStatement, "fetch", _fetch)
    watched: list[Any] = []

    def _watch(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        raw = dbapi_connection.driver_connection
        if all(raw is not seen for seen in watched):
            raw.add_query_logger(log.logged)
            watched.append(raw)

    engine = database.engine.sync_engine
    event.listen(engine, "checkout", _watch)
    event.listen(engine, "before_cursor_execute", log.before_execute)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", log.before_execute)
        event.remove(engine, "checkout", _watch)
        for raw in watched:
            raw.remove_query_logger(log.logged)


async def measure(
    sql: SqlLog, call: Awaitable[httpx.Response], status: int = 200
) -> tuple[httpx.Response, list[str]]:
    """Send one request; return the response and the statements it caused."""
    await _drain_query_loggers()  # what earlier requests logged late is not this one's
    sql.reset()
    response = await call
    await _drain_query_loggers()
    assert response.status_code == status, response.text
    return response, sql.statements


async def _drain_query_loggers() -> None:
    # asyncpg schedules its query loggers with call_soon: let them run.
    for _ in range(3):
        await asyncio.sleep(0)


@dataclass
class Catalog:
    """The measured data set."""

    big_owner: Account  # owns items[:100]
    owners: list[Account]
    item_ids: list[int]


@pytest.fixture
async def catalog(database: Database, make_user: MakeUser) -> Catalog:
    """200 items x 5 tags over 20 owners; the tag "common" is on every item."""
    owners = [await make_user() for _ in range(OWNERS)]
    async with database.transaction() as session:
        names = ["common", *(f"t{n:03d}" for n in range(TAG_POOL))]
        tag_ids = list(
            await session.scalars(
                insert(Tag).returning(Tag.id, sort_by_parameter_order=True),
                [{"name": name} for name in names],
            )
        )
        item_ids = list(
            await session.scalars(
                insert(Item).returning(Item.id, sort_by_parameter_order=True),
                [
                    {
                        "name": f"item {n:03d}",
                        "price": n,
                        "owner_id": owners[0 if n < 100 else n % OWNERS].id,
                    }
                    for n in range(ITEMS)
                ],
            )
        )
        links = [
            {"item_id": item_id, "tag_id": tag_ids[0 if j == 0 else 1 + (k * 7 + j) % TAG_POOL]}
            for k, item_id in enumerate(item_ids)
            for j in range(TAGS_PER_ITEM)
        ]
        await session.execute(insert(item_tags), links)
    return Catalog(owners[0], owners, item_ids)


def _assert_full(items: list[dict[str, Any]], size: int) -> None:
    assert len(items) == size
    assert all(len(item["tags"]) == TAGS_PER_ITEM for item in items)


# --- reads --------------------------------------------------------------------------------

# Pinned statement counts: the page itself is 1 statement (tags come from a correlated
# aggregate), count=true adds the (capped) COUNT(*). Tag filters and /tags/{name}/items add
# 1 that reads the tags' ids the first time a name is asked for (the ids go into the page
# statement as literals, so the planner knows how common each tag is), none once the ids
# are remembered. /users/{id}/items adds 1 only when the page is empty (404 or empty list).
# No BEGIN/ROLLBACK around reads on either backend. On SQLite a `q` adds 1: the probe of
# the trigram table that decides whether the page starts from its candidates
# (db/name_search.py).
LIST_COUNTS = {
    "/items": 1,
    "/items?count=true": 2,
    "/items?tag=common&q=item&sort=-price,name": 1,
    "/users/{owner}/items": 1,
    "/users/{owner}/items?count=true": 2,
    "/tags/common/items": 1,
    "/tags/common/items?count=true&sort=-updated_at": 2,
}


@pytest.mark.parametrize(("url", "expected"), list(LIST_COUNTS.items()))
async def test_list_pages_cost_the_same_for_1_and_100_items(
    client: httpx.AsyncClient,
    database: Database,
    catalog: Catalog,
    sql: SqlLog,
    url: str,
    expected: int,
) -> None:
    if "q=" in url and database.backend.name_trigram_table:
        expected += 1
    url = url.format(owner=catalog.big_owner.id)
    separator = "&" if "?" in url else "?"
    await measure(sql, client.get(url))  # tag ids remembered (the next test pins the first)
    one, small = await measure(sql, client.get(f"{url}{separator}limit=1"))
    hundred, big = await measure(sql, client.get(f"{url}{separator}limit=100"))

    _assert_full(one.json(), 1)
    _assert_full(hundred.json(), 100)
    assert len(small) == len(big) == expected, (small, big)


@pytest.mark.parametrize("url", ["/tags/{fresh}/items", "/items?tag=common&tag={fresh}"])
async def test_tag_ids_are_looked_up_once_per_name(
    client: httpx.AsyncClient, database: Database, catalog: Catalog, sql: SqlLog, url: str
) -> None:
    fresh = f"fresh-{uuid.uuid4().hex}"  # a name no earlier request asked for
    async with database.transaction() as session:
        tag_id = await session.scalar(insert(Tag).returning(Tag.id), {"name": fresh})
        await session.execute(insert(item_tags), {"item_id": catalog.item_ids[0], "tag_id": tag_id})
    url = url.format(fresh=fresh)

    _, first = await measure(sql, client.get(url))
    page, again = await measure(sql, client.get(url))

    assert [item["id"] for item in page.json()] == [catalog.item_ids[0]]
    assert sum("WHERE tags.name IN" in s for s in first) == 1, first
    assert not any("WHERE tags.name IN" in s for s in again), again
    assert len(again) == len(first) - 1


async def test_an_empty_user_page_asks_whether_the_user_exists(
    client: httpx.AsyncClient, catalog: Catalog, sql: SqlLog
) -> None:
    owner = catalog.big_owner.id
    _, full = await measure(sql, client.get(f"/users/{owner}/items"))
    _, past_the_end = await measure(sql, client.get(f"/users/{owner}/items?skip=5000"))
    missing, unknown = await measure(sql, client.get("/users/999999/items"), status=404)

    assert len(full) == 1, full
    assert len(past_the_end) == len(unknown) == 2, (past_the_end, unknown)
    assert missing.json() == {"detail": "User not found"}


async def test_cursor_pages_cost_the_same_as_the_first(
    client: httpx.AsyncClient, catalog: Catalog, sql: SqlLog
) -> None:
    first, on_first = await measure(sql, client.get("/items?limit=50&sort=-price,name"))
    link = first.headers["link"]
    url = link[link.index("<") + 1 : link.index(">")]
    second, on_second = await measure(sql, client.get(url))

    _assert_full(second.json(), 50)
    assert len(on_first) == len(on_second) == 1, (on_first, on_second)


async def test_read_item_is_one_statement(
    client: httpx.AsyncClient, catalog: Catalog, sql: SqlLog
) -> None:
    response, statements = await measure(sql, client.get(f"/items/{catalog.item_ids[0]}"))
    _assert_full([response.json()], 1)
    assert len(statements) == 1, statements


async def test_list_tags_is_one_statement_for_1_and_100_tags(
    client: httpx.AsyncClient, catalog: Catalog, sql: SqlLog
) -> None:
    one, small = await measure(sql, client.get("/tags?limit=1"))
    hundred, big = await measure(sql, client.get("/tags?limit=100"))

    assert len(one.json()) == 1
    assert len(hundred.json()) == 100
    assert one.json()[0] == {"id": one.json()[0]["id"], "name": "common", "item_count": ITEMS}
    assert len(small) == len(big) == 1, (small, big)


# --- writes -------------------------------------------------------------------------------

# A write costs the token's user lookup (outside any transaction), then either ONE
# statement with no BEGIN/COMMIT (PostgreSQL: every item write, tags included, is one
# statement of data-modifying CTEs) or one transaction (SQLite): BEGIN (+ COMMIT where
# visible, see the module docstring) and
#   POST with tags: INSERT item, upsert the tags, INSERT item_tags from their names
#                   -> 3 whatever the number of tags;
#   PATCH/PUT with tags: UPDATE, DELETE old links, then the same 2 tag statements;
#   PATCH/PUT without tags: UPDATE ... RETURNING, SELECT the tag names;
#   DELETE: DELETE ... RETURNING.
TRANSACTION = {"sqlite": 1, "postgresql": 2}  # BEGIN IMMEDIATE | BEGIN + COMMIT
AUTH = 1
MANY_TAGS = [f"new{n}" for n in range(25)] + [f"t{n:03d}" for n in range(25)]  # 50: the max


SINGLE_STATEMENT = AUTH + 1


def _write_cost(backend: str, statements: int) -> int:
    return TRANSACTION[backend] + AUTH + statements


async def test_create_item_costs_the_same_for_1_and_50_tags(
    client: httpx.AsyncClient, catalog: Catalog, sql: SqlLog, backend: str
) -> None:
    owner = catalog.big_owner
    body = {"name": "lamp", "price": 1}
    _, bare = await measure(sql, client.post("/items", json=body, headers=owner.headers), 201)
    one, few = await measure(
        sql, client.post("/items", json=body | {"tags": ["common"]}, headers=owner.headers), 201
    )
    fifty, many = await measure(
        sql, client.post("/items", json=body | {"tags": MANY_TAGS}, headers=owner.headers), 201
    )

    assert len(one.json()["tags"]) == 1
    assert len(fifty.json()["tags"]) == 50
    if backend == "postgresql":
        assert len(bare) == len(few) == len(many) == SINGLE_STATEMENT, (bare, few, many)
    else:
        assert len(bare) == _write_cost(backend, 1), bare
        assert len(few) == len(many) == _write_cost(backend, 3), (few, many)


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_update_item_costs_the_same_for_1_and_50_tags(
    client: httpx.AsyncClient, catalog: Catalog, sql: SqlLog, backend: str, method: str
) -> None:
    owner = catalog.big_owner
    item_url = f"/items/{catalog.item_ids[0]}"
    _, bare = await measure(
        sql, client.request(method, item_url, json={"name": "x"}, headers=owner.headers)
    )
    one, few = await measure(
        sql, client.request(method, item_url, json={"tags": ["common"]}, headers=owner.headers)
    )
    fifty, many = await measure(
        sql, client.request(method, item_url, json={"tags": MANY_TAGS}, headers=owner.headers)
    )
    _, back_to_one = await measure(
        sql, client.request(method, item_url, json={"tags": ["x"]}, headers=owner.headers)
    )

    assert len(one.json()["tags"]) == 1
    assert len(fifty.json()["tags"]) == 50
    if backend == "postgresql":
        assert len(bare) == SINGLE_STATEMENT, bare
        assert len(few) == len(many) == len(back_to_one) == SINGLE_STATEMENT, (few, many)
    else:
        assert len(bare) == _write_cost(backend, 2), bare
        assert len(few) == len(many) == len(back_to_one) == _write_cost(backend, 4), (few, many)


async def test_delete_item_costs_the_same_whatever_its_tags(
    client: httpx.AsyncClient, catalog: Catalog, sql: SqlLog, backend: str
) -> None:
    owner = catalog.big_owner
    created = await client.post(
        "/items", json={"name": "x", "price": 1, "tags": MANY_TAGS}, headers=owner.headers
    )
    _, many = await measure(
        sql, client.delete(f"/items/{created.json()['id']}", headers=owner.headers), 204
    )
    _, five = await measure(
        sql, client.delete(f"/items/{catalog.item_ids[0]}", headers=owner.headers), 204
    )

    cost = SINGLE_STATEMENT if backend == "postgresql" else _write_cost(backend, 1)
    assert len(many) == len(five) == cost, (many, five)


# --- no lazy loading ------------------------------------------------------------------------


def test_every_relationship_refuses_to_load_lazily() -> None:
    relationships = [
        (mapper.class_.__name__, rel.key, rel.lazy)
        for mapper in Base.registry.mappers
        for rel in mapper.relationships
        if isinstance(rel, RelationshipProperty)
    ]
    assert {(cls, key) for cls, key, _ in relationships} >= {
        ("Item", "tags"),
        ("Item", "owner"),
        ("User", "items"),
        ("Tag", "items"),
    }
    assert all(lazy == "raise" for _, _, lazy in relationships), relationships


async def test_touching_an_unloaded_relationship_raises(
    database: Database, catalog: Catalog
) -> None:
    async with database.autocommit_session() as session:
        item = (await session.scalars(select(Item).where(Item.id == catalog.item_ids[0]))).one()
        user = await session.get(User, catalog.big_owner.id)
        tag = (await session.scalars(select(Tag).where(Tag.name == "common"))).one()
        assert user is not None
        for load in (
            lambda: item.tags,
            lambda: item.owner,
            lambda: user.items,
            lambda: tag.items,
        ):
            with pytest.raises(InvalidRequestError, match="lazy='raise'"):
                load()


# Account and tag writes: one statement after the token's user lookup, outside any
# transaction on PostgreSQL and in one transaction on SQLite. Deleting a tag also moves
# the version (ETag) of the items that carried it: the same statement on PostgreSQL, one
# more on SQLite.
ACCOUNT_AND_TAG_WRITES: dict[str, tuple[str, str, Any, int, dict[str, int]]] = {
    # name: (method, path, body, status, statements after the user lookup per backend)
    # Registration reads the email first, to refuse a taken one before hashing the password.
    "POST /users": (
        "POST",
        "/users",
        {"email": "n@example.com", "password": "x" * 8},
        201,
        {"postgresql": 2, "sqlite": 2},
    ),
    "PATCH /users/me": ("PATCH", "/users/me", {"full_name": "Me"}, 200, {}),
    "PATCH /users/{id}": ("PATCH", "/users/{other}", {"is_active": False}, 200, {}),
    "DELETE /users/{id}": ("DELETE", "/users/{other}", None, 204, {}),
    "POST /tags": ("POST", "/tags", {"name": "fresh"}, 201, {}),
    "DELETE /tags/{name}": ("DELETE", "/tags/common", None, 204, {"sqlite": 2}),
}


@pytest.mark.parametrize("write", ACCOUNT_AND_TAG_WRITES.values(), ids=ACCOUNT_AND_TAG_WRITES)
async def test_account_and_tag_writes_are_one_statement(
    client: httpx.AsyncClient,
    catalog: Catalog,
    make_user: MakeUser,
    sql: SqlLog,
    backend: str,
    write: tuple[str, str, Any, int, dict[str, int]],
) -> None:
    method, path, body, status, exceptions = write
    admin = await make_user(is_superuser=True)
    path = path.format(other=catalog.owners[-1].id)
    anonymous = path == "/users"
    call = client.request(method, path, json=body, headers=None if anonymous else admin.headers)
    _, sent = await measure(sql, call, status)
    statements = exceptions.get(backend, 1) + (0 if anonymous else AUTH)
    if backend == "postgresql":
        assert len(sent) == statements, sent
    else:
        assert len(sent) == TRANSACTION[backend] + statements, sent
