"""What a worker does at start, before its first request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# In a fresh interpreter: nothing else in it has touched the ORM yet.
_SCRIPT = """
import asyncio
from catalog.api.app import create_app
from catalog.db.base import Base

app = create_app()
before = all(mapper.configured for mapper in Base.registry.mappers)

async def start_and_stop() -> bool:
    async with app.router.lifespan_context(app):
        return all(mapper.configured for mapper in Base.registry.mappers)

print(before, asyncio.run(start_and_stop()))
"""


def test_the_orm_mappers_are_configured_at_start_not_by_the_first_request(
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'start.db'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        cwd=tmp_path,  # the development signing key is written there, not in the checkout
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
