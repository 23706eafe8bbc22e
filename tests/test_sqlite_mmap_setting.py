"""SQLITE_MMAP_MB at non-default values: what every SQLite connection maps, API and CLI alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from catalog.db.database import Database, SyncDatabase
from tests.conftest import make_settings


@pytest.mark.parametrize("megabytes", [3, 0])  # 0: off; the default is 1024
async def test_every_sqlite_connection_maps_the_configured_size(
    tmp_path: Path, megabytes: int
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'own.db'}", sqlite_mmap_mb=megabytes)
    api, cli = Database.from_settings(settings), SyncDatabase.from_settings(settings)
    try:
        async with api.engine.connect() as connection:
            api_bytes = (await connection.execute(text("PRAGMA mmap_size"))).scalar()
        with cli.engine.connect() as sync_connection:
            cli_bytes = sync_connection.execute(text("PRAGMA mmap_size")).scalar()
    finally:
        await api.dispose()
        cli.dispose()
    assert api_bytes == cli_bytes == megabytes * 2**20
