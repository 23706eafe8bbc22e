"""The backup `catalog db upgrade` takes before it migrates (MIGRATION_BACKUP)."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from catalog.backup import BackupResult, backup_database
from catalog.config import Settings
from catalog.migrations.runner import alembic_config, current_revisions
from catalog.progress import ProgressSink


def wanted(settings: Settings) -> bool:
    """Whether the settings ask for a backup before migrations."""
    if settings.migration_backup == "auto":
        return settings.environment == "production"
    return settings.migration_backup == "always"


def pending(settings: Settings, revision: str) -> bool:
    """Whether upgrading to `revision` would change a database that already has a schema.

    A database at base (no migration applied) has nothing worth backing up.
    """
    current = current_revisions(settings)
    if not current:
        return False
    script = ScriptDirectory.from_config(alembic_config(settings))
    steps = script.iterate_revisions(revision, current, implicit_base=True)
    return any(step is not None and step.revision not in current for step in steps)


def backup_before_upgrade(
    settings: Settings, revision: str, progress: ProgressSink | None = None
) -> BackupResult | None:
    """A backup into MIGRATION_BACKUP_DIR when one is wanted and needed, else None."""
    if not wanted(settings) or not pending(settings, revision):
        return None
    return backup_database(
        settings.database_url, default_dir=settings.migration_backup_dir, progress=progress
    )
