"""Run Alembic from code (CLI, tests) with the same configuration as `alembic` at the root."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData

from catalog.config import Settings, get_settings
from catalog.db.engine import read_once
from catalog.migrations.review import Operation, describe, populated_tables

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(settings: Settings | None = None, script_location: Path | None = None) -> Config:
    """An Alembic Config for this package; `settings` overrides the environment's.

    `script_location`: another migrations folder (tests: a copy with an extra revision).
    """
    ini = MIGRATIONS_DIR.parents[2] / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(script_location or MIGRATIONS_DIR))
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


def _printing_config(settings: Settings | None, script_location: Path | None = None) -> Config:
    config = alembic_config(settings, script_location)
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
    settings: Settings | None = None,
    *,
    message: str,
    autogenerate: bool = True,
    script_location: Path | None = None,
    target_metadata: MetaData | None = None,
) -> tuple[list[Path], list[Operation]]:
    """Write a new revision file (compared against the database if `autogenerate`).

    Returns the files written and, for review, the operations autogenerate put in them
    (destructive ones marked). `target_metadata` replaces the models' (tests).
    """
    config = _printing_config(settings, script_location)
    if target_metadata is not None:
        config.attributes["target_metadata"] = target_metadata
    found: list[Operation] = []

    def collect(context: MigrationContext, _revision: object, directives: list[Any]) -> None:
        if not autogenerate or context.connection is None:
            return
        populated = populated_tables(context.connection)
        for script in directives:
            found.extend(describe(script.upgrade_ops, populated))

    scripts = command.revision(
        config, message=message, autogenerate=autogenerate, process_revision_directives=collect
    )
    written = scripts if isinstance(scripts, list) else [scripts]
    return [Path(script.path) for script in written if script is not None], found


def current_revisions(settings: Settings | None = None) -> tuple[str, ...]:
    """The revision ids the database is at (empty before the first migration)."""
    return read_once(settings or get_settings(), _heads)


def _heads(connection: Connection) -> tuple[str, ...]:
    """The revision ids of the database that `connection` is on."""
    return MigrationContext.configure(connection).get_current_heads()


def known_revisions(config: Config | None = None) -> set[str]:
    """Every revision id the code has a migration for."""
    script = ScriptDirectory.from_config(config or alembic_config())
    return {script_.revision for script_ in script.walk_revisions()}


def unknown_revisions(settings: Settings | None = None) -> tuple[str, ...]:
    """The database's revisions that no migration here names: it was migrated by other
    (newer) code, or a migration file was deleted. Empty when all is known."""
    known = known_revisions()
    return tuple(rev for rev in current_revisions(settings) if rev not in known)


def unknown_revision_message(revisions: tuple[str, ...]) -> str:
    """One line for an operator: what is wrong and the two ways out."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return (
        f"the database is at revision {', '.join(revisions)}, which this code does not know "
        f"(its newest migration is {head}): a newer release migrated it. Run that "
        f"release's code, or use it to downgrade the database to {head} "
        f"(`catalog db downgrade {head}`) before running this one"
    )
