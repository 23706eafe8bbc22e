"""The developer's shell does not leak into the tests (issue 19, item 5).

tests/conftest.py removes every variable the service reads before any test builds its
settings or starts a process. These tests prove it: the list is derived from `Settings`
(a new setting is covered without editing anything), and tests that a hostile shell used
to break pass in one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.config import Settings
from tests.conftest import CLEARED_ENVIRONMENT, clear_service_environment, service_variables

ROOT = Path(__file__).resolve().parent.parent

# Values that change what the service does, each one a setting some test relies on.
HOSTILE = {
    "METRICS": "on",
    "LOGIN_MAX_FAILURES": "1",
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "1",
    "LOGIN_FAILURE_WINDOW_SECONDS": "1",
    "ACCESS_TOKEN_EXPIRE_MINUTES": "1",
    "REQUIRE_IF_MATCH": "true",
    "MAX_TAG_FILTERS": "1",
    "DOCS_ENABLED": "false",
    "ADMIN": "on",
    "ALLOWED_HOSTS": "nowhere.example",
    "DATABASE_URL": "sqlite:////nonexistent/dir/catalog.db",
    "OTEL_SERVICE_NAME": "hostile",
    "PROMETHEUS_MULTIPROC_DIR": "/nonexistent",
    "CATALOG_FIRST_SUPERUSER_DONE": "1",  # would skip FIRST_SUPERUSER_* in every app
    # libpq's, applied by psycopg to every connection its URL leaves open
    "PGHOST": "/nonexistent",
    "PGUSER": "hostile",
    "PGPASSWORD": "hostile",
    "PGOPTIONS": "-c default_transaction_read_only=on",
    "PGSSLMODE": "require",
    "PGCONNECT_TIMEOUT": "1",
}


def test_every_settings_field_is_a_variable_the_tests_clear() -> None:
    environ = {name.upper(): "x" for name in Settings.model_fields} | {"CI": "true", "HOME": "/"}
    assert set(service_variables(environ)) == {name.upper() for name in Settings.model_fields}


def test_nothing_the_service_reads_is_left_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not service_variables(os.environ), CLEARED_ENVIRONMENT
    for name, value in HOSTILE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TEST_POSTGRES_URL", os.environ.get("TEST_POSTGRES_URL", "kept"))
    monkeypatch.setenv("PG_BIN", os.environ.get("PG_BIN", "kept"))

    removed = clear_service_environment()

    assert removed == HOSTILE
    # The tests' own variables stay, and where deploy/ finds PostgreSQL is not libpq's.
    assert {"TEST_POSTGRES_URL", "PG_BIN"} <= os.environ.keys()
    assert Settings(_env_file=None).metrics == "off"


@pytest.mark.slow
def test_a_hostile_shell_does_not_change_results() -> None:
    """Tests that `METRICS=on` and a login limit of 1 used to break, in such a shell."""
    selected = [
        "tests/telemetry/test_metrics.py::test_metrics_off_by_default_serves_404_and_collects_nothing",
        "tests/api/test_accounts.py::test_repeated_failures_for_an_account_are_429_even_with_the_right_password",
        "tests/api/test_accounts.py::test_guessing_the_current_password_is_throttled",
        "tests/api/test_conditional.py",
    ]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-k",
            "sqlite",
            *selected,
        ],
        cwd=ROOT,
        env=os.environ | HOSTILE,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary, output[-2000:]
    assert "skipped" not in summary, output[-2000:]
