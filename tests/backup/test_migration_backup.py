"""`catalog db upgrade` backs the database up first in production (MIGRATION_BACKUP)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from catalog.migrations import runner
from tests.backup.helpers import catalog, contents, ok, one_line_error
from tests.conftest import make_settings, throwaway_database

SCRIPTS = ScriptDirectory.from_config(runner.alembic_config())
HEAD = SCRIPTS.get_current_head()
PREVIOUS = SCRIPTS.get_revision(HEAD).down_revision if HEAD else None
RESTORE_COMMAND = re.compile(r"catalog db restore (\S+) --force")


@pytest.fixture
def behind_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with data, one migration behind the code."""
    assert isinstance(PREVIOUS, str)
    with throwaway_database(backend, tmp_path) as url:
        settings = make_settings(url)
        runner.upgrade(settings)
        ok(catalog(url, "seed", "--users", "2", "--tags", "3", "--items", "50"))
        runner.downgrade(settings, PREVIOUS)
        yield url


def upgrade(url: str, tmp_path: Path, **env: str) -> tuple[int, str]:
    result = catalog(url, "db", "upgrade", env=env, cwd=tmp_path)
    return result.returncode, result.stderr


def test_production_upgrade_backs_up_first_and_says_how_to_go_back(
    behind_url: str, tmp_path: Path
) -> None:
    before = contents(behind_url)
    backups = tmp_path / "pre-migration"
    code, stderr = upgrade(
        behind_url, tmp_path, ENVIRONMENT="production", MIGRATION_BACKUP_DIR=str(backups)
    )
    assert code == 0, stderr
    written = list(backups.iterdir())
    assert len(written) == 1
    command = RESTORE_COMMAND.search(" ".join(stderr.split()))
    assert command is not None, stderr
    assert Path(command.group(1)) == written[0].resolve()
    assert stderr.index("Backed up to") < stderr.index("Running upgrade")
    assert contents(behind_url)["alembic_version"] == [(HEAD,)]
    # The printed command is the way back: the data as it was before the migration.
    ok(catalog(behind_url, "db", "restore", command.group(1), "--force"))
    assert contents(behind_url) == before


@pytest.mark.parametrize(
    "env",
    [
        {"ENVIRONMENT": "production", "MIGRATION_BACKUP": "never"},
        {"ENVIRONMENT": "development"},  # auto: production only
    ],
    ids=["never", "auto-outside-production"],
)
def test_no_backup_unless_asked_for(behind_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    backups = tmp_path / "pre-migration"
    code, stderr = upgrade(behind_url, tmp_path, MIGRATION_BACKUP_DIR=str(backups), **env)
    assert code == 0, stderr
    assert not backups.exists()
    assert "Backed up" not in stderr


def test_always_backs_up_outside_production_too(behind_url: str, tmp_path: Path) -> None:
    backups = tmp_path / "pre-migration"
    code, stderr = upgrade(
        behind_url, tmp_path, MIGRATION_BACKUP="always", MIGRATION_BACKUP_DIR=str(backups)
    )
    assert code == 0, stderr
    assert len(list(backups.iterdir())) == 1


def test_no_backup_when_there_is_nothing_to_upgrade(behind_url: str, tmp_path: Path) -> None:
    runner.upgrade(make_settings(behind_url))
    backups = tmp_path / "pre-migration"
    code, stderr = upgrade(
        behind_url, tmp_path, MIGRATION_BACKUP="always", MIGRATION_BACKUP_DIR=str(backups)
    )
    assert code == 0, stderr
    assert not backups.exists()


def test_a_failed_backup_means_no_migration(behind_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = catalog(
        behind_url,
        "db",
        "upgrade",
        env={"ENVIRONMENT": "production", "MIGRATION_BACKUP_DIR": str(blocker / "backups")},
        cwd=tmp_path,
    )
    one_line_error(result, "not migrating", "backup")
    assert "Running upgrade" not in result.stderr
    assert contents(behind_url)["alembic_version"] == [(PREVIOUS,)]
