"""Run Alembic from code (CLI, tests) with the same configuration as `alembic` at the root."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from catalog.config import Settings, get_settings
from catalog.db.engine import create_sync_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(settings: Settings | None = None) -> Config:
    """An Alembic Config for this package; `settings` overrides the environment's."""
    ini = MIGRATIONS_DIR.parents[2] / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if settings is not None:
        config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings | None = None, revision: str = "-1") -> None:
    """Revert migrations down to `revision`."""
    command.downgrade(alembic_config(settings), revision)


def check(settings: Settings | None = None) -> None:
    """Raise if the models and the migrated schema differ (autogenerate finds operations)."""
    command.check(alembic_config(settings))


def _printing_config(settings: Settings | None) -> Config:
    config = alembic_config(settings)
    # Config's `stdout` default is the sys.stdout of import time; follow any redirection.
    config.stdout = sys.stdout
    return config


def current(settings: Settings | None = None, *, verbose: bool = False) -> None:
    """Print the revision the database is at (`alembic current`)."""
    command.current(_printing_config(settings), verbose=verbose)


def history(settings: Settings | None = None, *, verbose: bool = False) -> None:
    """Print the revisions, newest first, marking the current one (`alembic history`)."""
    command.history(_printing_config(settings), verbose=verbose, indicate_current=True)


def revision(
    settings: Settings | None = None, *, message: str, autogenerate: bool = True
) -> list[Path]:
    """Write a new revision file (compared against the database if `autogenerate`)."""
    scripts = command.revision(
        _printing_config(settings), message=message, autogenerate=autogenerate
    )
    written = scripts if isinstance(scripts, list) else [scripts]
    return [Path(script.path) for script in written if script is not None]


def current_revisions(settings: Settings | None = None) -> tuple[str, ...]:
    """The revision ids the database is at (empty before the first migration)."""
    engine = create_sync_engine(settings or get_settings())
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
