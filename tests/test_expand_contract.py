"""Expand, then contract: the previous release keeps working on a schema migrated to head.

During an upgrade the previous release's instances still serve while (and after) the new
migrations run. So its HTTP contract tests must pass on a database the CURRENT code
migrated to head. The previous release is the code at the last commit before the newest
migration (the head revision) arrived on this branch's first-parent history; it comes
from git (a clone in CI has the history) into a temporary folder and runs with this
environment, its own `src` first on the path, on PostgreSQL. Its tests use the given
database instead of migrating one: the CATALOG_TEST_PREMIGRATED_URL_* hook in
tests/conftest.py, or, for releases older than that hook, an equivalent fixture
override put beside their tests.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from catalog.config import Settings
from catalog.migrations import runner
from tests.conftest import (
    IN_CI,
    PREMIGRATED_URL_ENV,
    make_settings,
    throwaway_postgres_database,
)

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = "src/catalog/migrations/versions"
# The previous release's contract: its item API tests (create, read, list, update, delete,
# tags, conditional writes), on PostgreSQL. About 30 s.
CONTRACT_TESTS = ("tests/api/test_items.py",)
CONTRACT_SELECTION = "postgresql"
PYTEST_OPTIONS = ("-k", CONTRACT_SELECTION, "-q", "-p", "no:randomly", "-p", "no:cacheprovider")
RUN_TIMEOUT_S = 600
_SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}

# For releases whose conftest has no CATALOG_TEST_PREMIGRATED_URL_* hook yet.
OVERRIDE = '''"""Written by the next release's tests/test_expand_contract.py: use its database."""
import os
from pathlib import Path

import catalog
import pytest

# This must be the previous release's code, not the installed (current) package.
assert Path(catalog.__file__).resolve().is_relative_to(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="session")
def database_url(backend):
    yield os.environ[{env!r}.format(backend=backend.upper())]
'''


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI needs the git history: clone with fetch-depth 0)")
    pytest.skip(reason)


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=check, timeout=60
    )


def previous_release() -> str:
    """The commit of the previous release: the one before the head migration arrived."""
    if shutil.which("git") is None or git("rev-parse", "--git-dir", check=False).returncode:
        _missing("not a git checkout: the previous release cannot be found")
    head = ScriptDirectory.from_config(runner.alembic_config()).get_current_head()
    declares_head = rf"^revision(: *str)? *= *['\"]{re.escape(str(head))}['\"]"
    introduced = None
    for commit in git("rev-list", "--first-parent", "HEAD", "--", VERSIONS).stdout.split():
        found = git("grep", "-qE", declares_head, commit, "--", VERSIONS, check=False)
        if found.returncode != 0:
            break
        introduced = commit
    if introduced is None:  # the head migration is not committed yet: HEAD is the release
        return git("rev-parse", "HEAD").stdout.strip()
    parent = git("rev-parse", "--verify", "--quiet", f"{introduced}^1", check=False)
    if parent.returncode != 0:
        _missing(f"no commit before {introduced[:12]} (a shallow clone, or the first release)")
    return parent.stdout.strip()


def checkout(commit: str, into: Path) -> Path:
    """The files of `commit` in `into` (git archive: no worktree, nothing to clean up)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    conftest = (into / "tests" / "conftest.py").read_text()
    if PREMIGRATED_URL_ENV not in conftest:
        for folder in {(into / test).parent for test in CONTRACT_TESTS}:
            (folder / "conftest.py").write_text(OVERRIDE.format(env=PREMIGRATED_URL_ENV))
    return into


def run_contract_tests(
    release: Path, database_url: str, *pytest_args: str
) -> subprocess.CompletedProcess[str]:
    """The release's contract tests, with this interpreter, its own code, our database."""
    missing = [test for test in CONTRACT_TESTS if not (release / test).is_file()]
    if missing:
        pytest.fail(f"the previous release has no {missing}: update CONTRACT_TESTS")
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTINGS_VARIABLES}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(release / "src"), str(release)]),
        "TEST_DATABASE_POOLER": "none",
        PREMIGRATED_URL_ENV.format(backend="POSTGRESQL"): database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", *CONTRACT_TESTS, *PYTEST_OPTIONS, *pytest_args],
        cwd=release,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkout(previous_release(), tmp_path_factory.mktemp("previous-release"))


@pytest.fixture
def head_database() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated to head by the current code."""
    with throwaway_postgres_database() as url:
        runner.upgrade(make_settings(url))
        yield url


def test_the_previous_release_passes_its_contract_tests_on_head(
    release: Path, head_database: str
) -> None:
    result = run_contract_tests(release, head_database)
    summary = result.stdout.strip().splitlines()[-1:]
    assert result.returncode == 0, (
        "the previous release fails on the schema at head: a migration since it broke it. "
        "Split the change into expand (now) and contract (a later release); see README, "
        "Shipping a schema change.\n" + result.stdout[-6000:] + result.stderr[-2000:]
    )
    assert " passed" in summary[0], result.stdout[-2000:]


DROP_DESCRIPTION = '''"""Test only: a contract step shipped too early."""

revision = "9002"
down_revision = "{head}"
branch_labels = None
depends_on = None

from alembic import op


def upgrade() -> None:
    op.drop_column("items", "description")


def downgrade() -> None:
    raise NotImplementedError
'''


def test_a_destructive_migration_fails_the_previous_release(
    release: Path, head_database: str, tmp_path: Path
) -> None:
    """What the check is for: dropping a column the previous release reads breaks it."""
    copy = tmp_path / "migrations"
    shutil.copytree(runner.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory.from_config(runner.alembic_config()).get_current_head()
    (copy / "versions" / "29991231_9002_drop_description.py").write_text(
        DROP_DESCRIPTION.format(head=head)
    )
    command.upgrade(runner.alembic_config(make_settings(head_database), copy), "head")

    result = run_contract_tests(release, head_database, "-x")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 failed" in result.stdout.strip().splitlines()[-1]
    # The previous release's own code, still writing the column the migration dropped:
    assert 'column "description" of relation "items" does not exist' in result.stdout
    assert f"{release}/src/catalog/" in result.stdout
