"""The generated clients against a live `catalog serve`, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from catalog.db.database import Database
from tests.served import served_catalog


@pytest.fixture(scope="session")
def served(
    database_url: str, database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The service over the suite's database; its base URL. Asking for `database` puts
    each test that uses it under `_clean_tables`: what a client flow wrote is emptied."""
    with served_catalog(database_url, tmp_path_factory.mktemp("clients")) as base_url:
        yield base_url
