"""Shared by the backup tests: a seeded database, its contents, and `catalog` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text

from catalog.backup import MARKER_TABLE
from catalog.db.engine import create_sync_engine
from tests.conftest import POOLER, SECRET, make_settings

CATALOG = Path(sys.executable).parent / "catalog"
# What a Catalog database holds, in an order that compares equal between two copies.
CONTENTS = {
    "users": "SELECT id, email, hashed_password, is_superuser FROM users ORDER BY id",
    "tags": "SELECT id, name FROM tags ORDER BY id",
    "items": "SELECT id, name, price, owner_id, version FROM items ORDER BY id",
    "item_tags": "SELECT item_id, tag_id FROM item_tags ORDER BY item_id, tag_id",
    "alembic_version": "SELECT version_num FROM alembic_version",
}


def catalog(
    url: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `catalog ARGS` as its own process against `url`."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "test",
        "DATABASE_POOLER": POOLER,
        **(env or {}),
    }
    return subprocess.run(
        [str(CATALOG), *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def contents(url: str) -> dict[str, list[Any]]:
    engine = create_sync_engine(make_settings(url))
    try:
        with engine.connect() as connection:
            return {
                table: [tuple(row) for row in connection.execute(text(query))]
                for table, query in CONTENTS.items()
            }
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_sync_engine(make_settings(url))
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def marked(url: str) -> bool:
    return MARKER_TABLE in tables(url)


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The single `error: ...` line of a failed command, holding every fragment."""
    assert result.returncode != 0, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def files_in(directory: Path) -> Sequence[str]:
    return sorted(path.name for path in directory.iterdir())
