"""`q` through the copies of the names lower-cased: SQLite's trigram index of names
(db/name_search.py, migration 0011) and PostgreSQL's items.name_folded (migration 0014).

On SQLite the index only narrows the rows `q` tests; whether a statement starts from it
depends on how many candidates it finds. Both ways must give the same answers, which these
tests compare on names with LIKE wildcards, backslashes, double quotes and non-ASCII case.
On both databases the answers are those of the contract's model, and the copy must follow
every write (it is kept by triggers).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from catalog.db import name_search
from catalog.db.database import Database
from tests.api.test_item_listing import (
    BASE,
    ENDPOINTS,
    Catalog,
    Row,
    delete_row,
    expected_ids,
    ids,
    insert_rows,
    standard_rows,
)
from tests.conftest import Account, sqlite_only

EXTRA_NAMES = ['say "lamp"', "ΣΟΦΙΑ lamp", "STRASSE lamp", "lamp*?[x]"]
SEARCHES = [
    "lamp",
    "LAMP",
    "amp%",
    "amp_",
    "amp\\",
    "amp_1",
    "amp%2",
    "lamp\\3",
    '"lamp"',
    'say "la',
    "σοφια",
    "strasse",
    "amp*?[x",
    "émile",
    "ÉCLAIR",
    "nothing like it",
]


@pytest.fixture
async def catalog(database: Database, user: Account, other_user: Account) -> Catalog:
    """The listing tests' data set plus names with FTS5 and GLOB syntax in them."""
    rows = standard_rows(user.id, other_user.id)
    rows += [Row(name, Decimal(1), user.id, BASE, tags=("red",)) for name in EXTRA_NAMES]
    await insert_rows(database, rows)
    return Catalog(user, other_user, rows)


async def _answers(client: httpx.AsyncClient, catalog: Catalog, q: str) -> list[Any]:
    answers = []
    for endpoint in ENDPOINTS:
        for sort in ("id", "-price,name", "-updated_at"):
            params = {"q": q, "sort": sort, "count": "true", "limit": 3}
            response = await client.get(catalog.path(endpoint), params=params)
            assert response.status_code == 200, response.text
            everything = {"q": q, "sort": sort}
            assert ids(response) == expected_ids(catalog, endpoint, everything)[:3], params
            answers.append((response.json(), response.headers.get("x-total-count")))
    return answers


@sqlite_only
@pytest.mark.parametrize("q", SEARCHES)
async def test_the_index_and_the_scan_give_the_same_answers(
    client: httpx.AsyncClient, catalog: Catalog, monkeypatch: pytest.MonkeyPatch, q: str
) -> None:
    monkeypatch.setattr(name_search, "PAGE_CANDIDATES", 10**9)
    monkeypatch.setattr(name_search, "COUNT_CANDIDATES", 10**9)
    from_the_index = await _answers(client, catalog, q)
    monkeypatch.setattr(name_search, "PAGE_CANDIDATES", -1)
    monkeypatch.setattr(name_search, "COUNT_CANDIDATES", -1)
    assert await _answers(client, catalog, q) == from_the_index


@pytest.mark.parametrize("q", SEARCHES)
async def test_every_search_answers_as_the_contract_says(
    client: httpx.AsyncClient, catalog: Catalog, q: str
) -> None:
    assert await _answers(client, catalog, q)  # each answer checked against the model


async def test_the_index_follows_creates_renames_and_deletes(
    client: httpx.AsyncClient, database: Database, user: Account
) -> None:
    created = await client.post(
        "/items", json={"name": "Brass Kettle", "price": "3.00"}, headers=user.headers
    )
    assert created.status_code == 201, created.text
    item = created.json()
    assert ids(await client.get("/items", params={"q": "kettle"})) == [item["id"]]

    renamed = await client.patch(
        f"/items/{item['id']}",
        json={"name": "Copper Teapot"},
        headers=user.headers | {"If-Match": created.headers["etag"]},
    )
    assert renamed.status_code == 200, renamed.text
    assert ids(await client.get("/items", params={"q": "kettle"})) == []
    assert ids(await client.get("/items", params={"q": "teapot"})) == [item["id"]]

    await delete_row(database, item["id"])
    assert ids(await client.get("/items", params={"q": "teapot"})) == []


def test_trigram_query_reads_the_pattern_as_unicode_ilike_does() -> None:
    """Escapes undone, lower-cased by str.lower, every character covered, quotes doubled."""
    query = name_search.trigram_query
    assert query("%ab%") is None  # shorter than a trigram
    assert query("%ABC%") == '"abc"'
    assert query("%abcdefg%") == '"abc" AND "def" AND "efg"'
    assert query("%a\\%b\\_\\\\%") == '"a%b" AND "b_\\"'  # a%b_\
    assert query('%Say "x%') == '"say" AND " ""x"'
    with pytest.raises(ValueError, match="contains_pattern"):
        query("abc")


@sqlite_only
async def test_the_index_equals_the_names_after_concurrent_writes(
    client: httpx.AsyncClient, database: Database, user: Account, other_user: Account
) -> None:
    """Creates, renames and deletes from two users at once: afterwards the index holds
    exactly each item's lower-cased name (its triggers write in the writer's transaction)."""

    async def work(account: Account, n: int) -> None:
        made = await client.post(
            "/items", json={"name": f"Item {n} ÄÖ", "price": "1.00"}, headers=account.headers
        )
        assert made.status_code == 201, made.text
        if n % 3 == 0:
            etag = made.headers["etag"]
            patch = {"name": f"Renamed {n} ΣΟΦΙΑ"}
            renamed = await client.patch(
                f"/items/{made.json()['id']}",
                json=patch,
                headers=account.headers | {"If-Match": etag},
            )
            assert renamed.status_code == 200, renamed.text
        if n % 4 == 0:
            await delete_row(database, made.json()["id"])

    await asyncio.gather(*(work(user if n % 2 else other_user, n) for n in range(24)))
    async with database.transaction() as session:
        names = dict((await session.execute(text("SELECT id, name FROM items"))).tuples().all())
        index = dict(
            (await session.execute(text(f"SELECT rowid, name FROM {name_search.TABLE}")))
            .tuples()
            .all()
        )
    assert len(names) == 24 - 6
    assert index == {item_id: name.lower() for item_id, name in names.items()}
