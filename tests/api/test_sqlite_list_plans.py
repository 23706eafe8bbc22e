"""SQLite plans chosen by probes (services/item_listing.py): the same answers either way.

SQLite's planner keeps no statistics of values, so the list counts some facts first (how
wide a creation range is) and words its statement accordingly; whichever it picks, the
answer must not change.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from catalog.db.database import Database
from catalog.services import item_listing
from tests.api.test_item_listing import (
    ENDPOINTS,
    Catalog,
    expected_ids,
    ids,
    insert_rows,
    standard_rows,
)
from tests.conftest import Account, sqlite_only

RANGES: list[dict[str, str]] = [
    {"created_after": "2026-01-01T02:00:00Z"},
    {"created_before": "2026-01-01T03:00:00Z"},
    {"created_after": "2026-01-01T01:00:00Z", "created_before": "2026-01-01T05:00:00.5Z"},
    {"created_after": "2026-01-01T03:00:00+02:00", "min_price": "1"},
]


@pytest.fixture
async def catalog(database: Database, user: Account, other_user: Account) -> Catalog:
    """The listing tests' data set (items created over several hours, ties everywhere)."""
    rows = standard_rows(user.id, other_user.id)
    await insert_rows(database, rows)
    return Catalog(user, other_user, rows)


async def _answers(client: httpx.AsyncClient, catalog: Catalog, params: dict[str, str]) -> Any:
    answers = []
    for endpoint in ENDPOINTS:
        for sort in ("name", "-price,name", "-name"):
            query = params | {"sort": sort, "count": "true"}
            response = await client.get(catalog.path(endpoint), params=query | {"limit": 4})
            assert response.status_code == 200, response.text
            assert ids(response) == expected_ids(catalog, endpoint, query)[:4], query
            answers.append((response.json(), response.headers.get("x-total-count")))
    return answers


@sqlite_only
@pytest.mark.parametrize("params", RANGES, ids=repr)
async def test_a_creation_range_read_or_walked_gives_the_same_answers(
    client: httpx.AsyncClient,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
    params: dict[str, str],
) -> None:
    monkeypatch.setattr(item_listing, "WIDE_RANGE_ROWS", 10**9)  # never wide: the range's index
    read = await _answers(client, catalog, params)
    monkeypatch.setattr(item_listing, "WIDE_RANGE_ROWS", -1)  # always wide: walked
    assert await _answers(client, catalog, params) == read
