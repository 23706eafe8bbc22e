"""Run Alembic from code (CLI, tests) with the same configuration as `alembic` at the root."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from catalog.config import Settings

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
