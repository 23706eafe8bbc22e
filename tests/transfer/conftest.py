"""Fixtures of the transfer tests: throwaway databases of the backend, one holding the sample."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.transfer.sample import EngineFactory, fill, migrated_engine


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def new_engine(backend: str, tmp_path: Path) -> Iterator[EngineFactory]:
    """Factory: a migrated, empty throwaway database of the backend, as an engine."""
    with ExitStack() as stack:
        yield lambda: migrated_engine(stack, backend, tmp_path)


@pytest.fixture
def source(new_engine: EngineFactory) -> Engine:
    """A database holding the sample catalog."""
    engine = new_engine()
    fill(engine)
    return engine
