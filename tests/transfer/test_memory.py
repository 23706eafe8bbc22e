"""Export and import stream: their peak memory does not grow with the number of rows.

Measured with tracemalloc (Python's own allocations, deterministic), on 1,000 and then
10,000 items in batches of 250: a file or result set held in memory would add megabytes;
streaming adds nothing but caches (compiled statements) that do not depend on the size.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from catalog.seed import SeedOptions, seed_database
from catalog.transfer import export_catalog, import_catalog
from tests.transfer.sample import EngineFactory

BATCH = 250
SMALL, LARGE = 1_000, 10_000
# What the larger run may add to the peak: an order of magnitude less than the
# 9,000 more items would take if they were held (over 1 KiB each as records).
ALLOWED_GROWTH = 512 * 1024


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _seed(engine: Engine, *, users: int, items: int) -> None:
    options = SeedOptions(users=users, items=items, tags=20, as_of=datetime(2026, 1, 1, tzinfo=UTC))
    with Session(engine) as session, session.begin():
        seed_database(
            session, options, hashed_password="$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"
        )


def _export(engine: Engine, path: Path) -> None:
    with path.open("wb") as stream:
        export_catalog(engine, stream, batch_size=BATCH)


def _import(engine: Engine, path: Path) -> None:
    with path.open("rb") as stream:
        import_catalog(engine, stream, batch_size=BATCH)


def test_peak_memory_does_not_grow_with_the_row_count(
    new_engine: EngineFactory, tmp_path: Path
) -> None:
    source, warm_up, first, second = (new_engine() for _ in range(4))
    _seed(source, users=20, items=SMALL)
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    _export(source, small)
    _import(warm_up, small)  # imports, compiled statements, pools: before measuring

    export_small = _peak(lambda: _export(source, small))
    import_small = _peak(lambda: _import(first, small))
    _seed(source, users=0, items=LARGE - SMALL)
    export_large = _peak(lambda: _export(source, large))
    import_large = _peak(lambda: _import(second, large))

    assert large.stat().st_size > 9 * small.stat().st_size
    assert export_large - export_small < ALLOWED_GROWTH, (export_small, export_large)
    assert import_large - import_small < ALLOWED_GROWTH, (import_small, import_large)
