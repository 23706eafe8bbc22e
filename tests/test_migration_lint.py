"""Migration lint: squawk on each revision's own offline SQL, as PostgreSQL runs it.

Each revision is rendered alone (`alembic upgrade PREV:REV --sql`): linted from the base,
every table would be new in the same script and most findings would vanish. A finding
fails the run unless the migration file accepts that rule with a reason, in a module-level
`SQUAWK_IGNORE = {"rule-name": "reason"}` (read from the source, not imported). A few
rules are the project's policy and are excluded everywhere, each for the reason below.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from catalog.migrations import runner
from tests.conftest import IN_CI, make_settings

SQUAWK = Path(sys.executable).parent / "squawk"
PG_VERSION = "15"
# Offline SQL never connects: the URL only names the dialect.
OFFLINE_URL = "postgresql://offline@127.0.0.1:1/not_connected"
PROJECT_EXCLUDED = {
    "prefer-bigint-over-int": "ids and counters are 32-bit on purpose, as on SQLite, and "
    "the API refuses ids past that range; a table nearing 2^31 rows gets its own migration",
    "prefer-identity": "SQLAlchemy renders Integer primary keys as SERIAL on every table; "
    "one spelling across the schema, and the sequences are dropped with their tables",
    "prefer-text-field": "VARCHAR(n) lengths are part of the API's contract and hold on "
    "SQLite too; changing one is a reviewed migration of its own (squawk flags it there)",
    "require-statement-timeout": "migrations run without a statement timeout on purpose: a "
    "CONCURRENTLY index build or a batched backfill is long; what must be bounded is the "
    "wait for locks, and env.py sets lock_timeout for every migration",
}
MIGRATION_IGNORE = "SQUAWK_IGNORE"


def squawk_binary() -> Path:
    if not SQUAWK.is_file():
        message = f"squawk is not installed at {SQUAWK} (make install: squawk-cli)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return SQUAWK


def offline_sql(start: str | None, revision: str, script_location: Path | None = None) -> str:
    """The SQL `alembic upgrade START:REVISION --sql` prints for PostgreSQL."""
    config = runner.alembic_config(make_settings(OFFLINE_URL), script_location)
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, f"{start}:{revision}" if start else revision, sql=True)
    return buffer.getvalue()


def accepted_rules(path: Path) -> dict[str, str]:
    """The migration's SQUAWK_IGNORE, checked: a literal dict of rule -> non-empty reason."""
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", 0)]
        if any(isinstance(t, ast.Name) and t.id == MIGRATION_IGNORE for t in targets):
            value = ast.literal_eval(node.value)  # type: ignore[attr-defined]
            assert isinstance(value, dict), f"{path.name}: {MIGRATION_IGNORE} must be a dict"
            for rule, reason in value.items():
                assert isinstance(reason, str), f"{path.name}: {rule!r}: the reason is text"
                assert len(reason.split()) >= 3, (
                    f"{path.name}: {MIGRATION_IGNORE}[{rule!r}] needs a reason "
                    f"(why the finding is safe here), not {reason!r}"
                )
            return dict(value)
    return {}


def lint(sql: str, excluded: dict[str, str], tmp_path: Path, name: str) -> list[dict[str, str]]:
    """squawk's findings on `sql`, minus the excluded rules."""
    script = tmp_path / f"{name}.sql"
    script.write_text(sql)
    result = subprocess.run(
        [
            str(squawk_binary()),
            f"--pg-version={PG_VERSION}",
            "--reporter=json",
            *(f"--exclude={rule}" for rule in sorted(excluded)),
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr
    findings: list[dict[str, str]] = json.loads(result.stdout or "[]")
    assert (result.returncode == 1) == bool(findings), result
    return findings


def explain(findings: list[dict[str, str]], sql: str, migration: str) -> str:
    lines = sql.splitlines()  # squawk's JSON counts lines from 0
    shown = [
        f"  {f['rule_name']}: {f['message']}\n      {lines[int(f['line'])].strip()}"
        for f in findings
    ]
    return (
        f"squawk finds in {migration}:\n"
        + "\n".join(shown)
        + f"\nFix the migration, or accept a rule in it with a reason: "
        f'{MIGRATION_IGNORE} = {{"rule-name": "why it is safe here"}}'
    )


def steps(script_location: Path | None = None) -> list[tuple[str | None, str, Path]]:
    """(previous revision, revision, file) from the base to the head."""
    script = ScriptDirectory.from_config(runner.alembic_config(None, script_location))
    ordered = list(reversed(list(script.walk_revisions())))
    return [(s.down_revision, s.revision, Path(s.path)) for s in ordered]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "revision", "path"), [pytest.param(*step, id=step[1]) for step in steps()]
)
def test_each_migration_passes_the_lint(
    start: str | None, revision: str, path: Path, tmp_path: Path
) -> None:
    sql = offline_sql(start, revision)
    assert f"Running upgrade {start or ''}" in sql
    excluded = PROJECT_EXCLUDED | accepted_rules(path)
    findings = lint(sql, excluded, tmp_path, revision)
    assert findings == [], explain(findings, sql, path.name)


# --- the lint itself ----------------------------------------------------------------------

BLOCKING_MIGRATION = '''"""Test only: an index built the blocking way."""

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None
{ignore}

from alembic import op


def upgrade() -> None:
    op.create_index("ix_items_description", "items", ["description"])


def downgrade() -> None:
    op.drop_index("ix_items_description", table_name="items")
'''


def migrations_with(tmp_path: Path, ignore: str = "") -> tuple[Path, Path]:
    """A copy of the migrations with one more (test-only) revision; its folder and file."""
    copy = tmp_path / "migrations"
    shutil.copytree(runner.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    head = steps()[-1][1]
    extra = copy / "versions" / "29991231_9001_blocking_index.py"
    extra.write_text(BLOCKING_MIGRATION.format(head=head, ignore=ignore))
    return copy, extra


def test_a_blocking_index_is_found(tmp_path: Path) -> None:
    copy, extra = migrations_with(tmp_path)
    start, revision, _ = steps(copy)[-1]
    sql = offline_sql(start, revision, copy)
    findings = lint(sql, PROJECT_EXCLUDED | accepted_rules(extra), tmp_path, revision)
    assert {f["rule_name"] for f in findings} == {"require-concurrent-index-creation"}
    assert "SQUAWK_IGNORE" in explain(findings, sql, extra.name)


def test_the_offline_sql_carries_the_lock_timeout() -> None:
    """env.py sets lock_timeout online; the offline script shows it too (so no
    require-lock-timeout finding is silenced by hand)."""
    sql = offline_sql(None, steps()[0][1])
    timeout_ms = make_settings(OFFLINE_URL).migration_lock_timeout_ms
    assert f"SET LOCAL lock_timeout = {timeout_ms};" in sql
    assert sql.index("SET LOCAL lock_timeout") < sql.index("CREATE TABLE")


def test_an_ignore_with_a_reason_accepts_the_finding(tmp_path: Path) -> None:
    reason = '{"require-concurrent-index-creation": "the table is created empty just above"}'
    copy, extra = migrations_with(tmp_path, f"SQUAWK_IGNORE = {reason}")
    start, revision, _ = steps(copy)[-1]
    excluded = PROJECT_EXCLUDED | accepted_rules(extra)
    assert lint(offline_sql(start, revision, copy), excluded, tmp_path, revision) == []


def test_an_ignore_without_a_reason_is_refused(tmp_path: Path) -> None:
    _, extra = migrations_with(
        tmp_path, 'SQUAWK_IGNORE = {"require-concurrent-index-creation": ""}'
    )
    with pytest.raises(AssertionError, match="needs a reason"):
        accepted_rules(extra)
