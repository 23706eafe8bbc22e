"""The `catalog` command line, invoked in-process with typer's CliRunner on both databases."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from typer.testing import CliRunner, Result

from catalog.api.app import create_app
from catalog.cli import app
from catalog.cli.http_protocol import BoundedHttpToolsProtocol
from catalog.config import get_settings
from catalog.db.database import Database
from catalog.db.engine import create_sync_engine
from catalog.logs import logging_config
from catalog.migrations import runner
from catalog.migrations.runner import upgrade
from catalog.security import verify_password
from tests.conftest import POOLER, SECRET, make_settings, throwaway_database

cli = CliRunner()


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer .env or .secret_key leaks in, and none is written into the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database of this test's backend."""
    with throwaway_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def migrated_url(fresh_url: str) -> str:
    upgrade(make_settings(fresh_url))
    return fresh_url


def invoke(
    url: str, *args: str, input: str | None = None, env: dict[str, str | None] | None = None
) -> Result:
    """Run `catalog ARGS` against `url`, with settings read afresh from the environment."""
    environment: dict[str, str | None] = {
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "test",
        "DATABASE_POOLER": POOLER,
    }
    get_settings.cache_clear()
    try:
        return cli.invoke(app, list(args), input=input, env=environment | (env or {}))
    finally:
        get_settings.cache_clear()


def query(url: str, sql: str, **params: Any) -> Sequence[Any]:
    """Rows straight from the database."""
    engine = create_sync_engine(make_settings(url))
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).all()
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(runner.alembic_config()).get_current_head()
    assert head is not None
    return head


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


# --- db ---------------------------------------------------------------------------------


def test_db_round_trip(fresh_url: str) -> None:
    head = head_revision()
    assert invoke(fresh_url, "db", "current").stdout.strip() == ""

    result = invoke(fresh_url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "Running upgrade" in result.stderr
    assert f"at {head}" in result.stderr
    assert invoke(fresh_url, "db", "current").stdout.strip() == f"{head} (head)"

    history = invoke(fresh_url, "db", "history")
    assert history.exit_code == 0, history.output
    assert f"{head} (head) (current)" in history.stdout
    assert "<base> ->" in history.stdout

    assert invoke(fresh_url, "db", "check").exit_code == 0

    result = invoke(fresh_url, "db", "downgrade")
    assert result.exit_code == 0, result.output
    current = invoke(fresh_url, "db", "current").stdout.strip()
    assert current not in {"", f"{head} (head)"}

    result = invoke(fresh_url, "db", "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert "base (no tables)" in result.stderr
    engine = create_sync_engine(make_settings(fresh_url))
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()

    assert invoke(fresh_url, "db", "upgrade", "head").exit_code == 0
    assert invoke(fresh_url, "db", "check").exit_code == 0


def test_check_fails_on_drift(migrated_url: str) -> None:
    engine = create_sync_engine(make_settings(migrated_url))
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_item_tags_tag_id_item_id"))
    finally:
        engine.dispose()
    result = invoke(migrated_url, "db", "check")
    assert result.exit_code == 1
    *details, last = result.stderr.strip().splitlines()
    assert last.startswith("error: the models and the database schema differ")
    assert any("ix_item_tags_tag_id_item_id" in line for line in details)


def test_check_fails_on_unmigrated_database(fresh_url: str) -> None:
    assert_one_line_error(invoke(fresh_url, "db", "check"), 1, "not up to date")


def test_upgrade_to_unknown_revision_is_one_line(fresh_url: str) -> None:
    result = invoke(fresh_url, "db", "upgrade", "nope")
    assert_one_line_error(result, 1, "nope")


def test_revision_autogenerate_writes_an_empty_migration(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Into a copy of the migrations: the real versions directory stays untouched.
    copy = tmp_path / "migrations"
    shutil.copytree(runner.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runner, "MIGRATIONS_DIR", copy)
    before = set((copy / "versions").glob("*.py"))
    head = head_revision()

    result = invoke(migrated_url, "db", "revision", "-m", "nothing to do")

    assert result.exit_code == 0, result.output
    written = set((copy / "versions").glob("*.py")) - before
    assert len(written) == 1
    source = written.pop().read_text()
    assert f"Revises: {head}" in source
    assert "op." not in source  # no drift: nothing to generate
    assert str(copy) in result.stdout


# --- configuration and connection errors -----------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["db", "current"],
        ["db", "upgrade"],
        ["users", "create", "a@example.com", "--password-stdin"],
        ["users", "list"],
        ["seed", "--items", "1"],
        ["serve"],
    ],
    ids=" ".join,
)
def test_bad_database_url_is_one_line_and_exit_2(args: list[str]) -> None:
    result = invoke("mysql://x/y", *args, input="password123\n")
    assert_one_line_error(result, 2, "DATABASE_URL")


def test_production_without_secret_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = invoke(url, "serve", env={"ENVIRONMENT": "production", "SECRET_KEY": None})
    assert_one_line_error(result, 2, "SECRET_KEY")


def test_console_script_prints_settings_error_without_traceback() -> None:
    """The installed `catalog` entry point, not just the click command, in a real process."""
    script = Path(sys.executable).with_name("catalog")
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://x/y"}
    done = subprocess.run(
        [str(script), "db", "current"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        next(line for line in done.stderr.splitlines() if line.startswith("error: "))
    ]
    assert "DATABASE_URL" in done.stderr


def test_unreachable_database_is_one_line() -> None:
    result = invoke("postgresql://postgres@127.0.0.1:1/nowhere", "db", "current")
    assert_one_line_error(result, 1, "database error")


def test_unmigrated_database_suggests_upgrade(fresh_url: str) -> None:
    result = invoke(fresh_url, "users", "list")
    assert_one_line_error(result, 1, "catalog db upgrade")


# --- users ------------------------------------------------------------------------------


def test_users_create_prompts_twice_and_stores_the_user(migrated_url: str) -> None:
    result = invoke(
        migrated_url,
        "users",
        "create",
        "Admin@Example.COM",
        "--superuser",
        "--full-name",
        "Ada Admin",
        input="password123\npassword123\n",
    )
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.stdout
    assert "password123" not in result.output  # hidden input is never echoed
    rows = query(
        migrated_url, "SELECT email, full_name, is_superuser, is_active, hashed_password FROM users"
    )
    assert len(rows) == 1
    email, full_name, is_superuser, is_active, hashed = rows[0]
    assert (email, full_name, bool(is_superuser), bool(is_active)) == (
        "admin@example.com",
        "Ada Admin",
        True,
        True,
    )
    assert hashed != "password123"
    assert verify_password("password123", hashed)


def test_users_create_asks_again_when_the_passwords_differ(migrated_url: str) -> None:
    result = invoke(
        migrated_url,
        "users",
        "create",
        "bob@example.com",
        input="password123\ntypo-typo\npassword456\npassword456\n",
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    [(hashed, is_superuser)] = query(
        migrated_url, "SELECT hashed_password, is_superuser FROM users"
    )
    assert verify_password("password456", hashed)
    assert not is_superuser


def test_users_create_with_password_stdin(migrated_url: str) -> None:
    result = invoke(
        migrated_url, "users", "create", "cy@example.com", "--password-stdin", input="s3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    assert "Password" not in result.stdout  # no prompt in scripts
    [(hashed,)] = query(migrated_url, "SELECT hashed_password FROM users")
    assert verify_password("s3cret-pass", hashed)


def test_users_create_duplicate_email_exits_1(migrated_url: str) -> None:
    args = ("users", "create", "--password-stdin")
    assert invoke(migrated_url, *args, "dup@example.com", input="password123\n").exit_code == 0
    result = invoke(migrated_url, *args, "DUP@example.com", input="password999\n")
    assert_one_line_error(result, 1, "dup@example.com", "already exists")
    [(count,)] = query(migrated_url, "SELECT count(*) FROM users")
    assert count == 1


def test_users_create_rejects_a_bad_email_before_prompting(migrated_url: str) -> None:
    result = invoke(migrated_url, "users", "create", "not-an-email", input="password123\n" * 2)
    assert_one_line_error(result, 2, "email")
    assert "Password" not in result.stdout
    assert query(migrated_url, "SELECT id FROM users") == []


def test_users_create_rejects_a_short_password(migrated_url: str) -> None:
    result = invoke(
        migrated_url, "users", "create", "d@example.com", "--password-stdin", input="short\n"
    )
    assert_one_line_error(result, 2, "password")
    assert query(migrated_url, "SELECT id FROM users") == []


def test_users_set_password_deactivate_activate_and_list(migrated_url: str) -> None:
    assert (
        invoke(
            migrated_url,
            "users",
            "create",
            "e@example.com",
            "--password-stdin",
            input="first-pw1\n",
        ).exit_code
        == 0
    )
    result = invoke(
        migrated_url, "users", "set-password", "E@example.com", input="second-pw2\n" * 2
    )
    assert result.exit_code == 0, result.output
    [(hashed,)] = query(migrated_url, "SELECT hashed_password FROM users")
    assert verify_password("second-pw2", hashed)
    assert not verify_password("first-pw1", hashed)

    assert invoke(migrated_url, "users", "deactivate", "e@example.com").exit_code == 0
    [(active,)] = query(migrated_url, "SELECT is_active FROM users")
    assert not active
    assert invoke(migrated_url, "users", "activate", "e@example.com").exit_code == 0
    [(active,)] = query(migrated_url, "SELECT is_active FROM users")
    assert active

    listing = invoke(migrated_url, "users", "list")
    assert listing.exit_code == 0, listing.output
    assert "e@example.com" in listing.stdout

    missing = invoke(migrated_url, "users", "deactivate", "ghost@example.com")
    assert_one_line_error(missing, 1, "no user with email ghost@example.com")


# --- serve ------------------------------------------------------------------------------


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Record uvicorn.run's arguments instead of starting a server."""
    import uvicorn

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    return calls


def test_serve_defaults(tmp_path: Path, uvicorn_calls: list[Any]) -> None:
    result = invoke(f"sqlite:///{tmp_path / 'x.db'}", "serve")
    assert result.exit_code == 0, result.output
    [(args, kwargs)] = uvicorn_calls
    assert args == ("catalog.api.app:create_app",)
    assert kwargs | {"log_level": None} == {
        "factory": True,
        "host": "127.0.0.1",
        "port": 8000,
        "workers": 1,
        "reload": False,
        "reload_dirs": None,
        "loop": "uvloop",
        "http": BoundedHttpToolsProtocol,  # httptools, its request heads bounded
        "access_log": False,  # the service logs requests itself (ACCESS_LOG)
        "log_config": logging_config(get_settings()),
        "log_level": None,
        "timeout_graceful_shutdown": 20,
        "server_header": False,
        "proxy_headers": False,
        "forwarded_allow_ips": None,
    }


def test_serve_passes_options_through(tmp_path: Path, uvicorn_calls: list[Any]) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = invoke(
        url,
        "serve",
        *("--host", "0.0.0.0", "--port", "9001", "--workers", "3", "--no-access-log"),
        env={"ACCESS_LOG": None},  # restored afterwards: the command sets it for its workers
    )
    assert result.exit_code == 0, result.output
    [(_, kwargs)] = uvicorn_calls
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("0.0.0.0", 9001, 3)

    uvicorn_calls.clear()
    assert invoke(url, "serve", "--reload").exit_code == 0
    [(_, kwargs)] = uvicorn_calls
    assert kwargs["reload"] is True
    assert kwargs["reload_dirs"]


def test_serve_believes_forwarded_addresses_only_from_trusted_proxies(
    tmp_path: Path, uvicorn_calls: list[Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = invoke(url, "serve", env={"TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2"})
    assert result.exit_code == 0, result.output
    [(_, kwargs)] = uvicorn_calls
    assert kwargs["proxy_headers"] is True
    assert kwargs["forwarded_allow_ips"] == ["10.0.0.1", "10.0.0.2"]


def test_serve_access_log_option_reaches_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    seen: list[str | None] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.append(os.environ.get("ACCESS_LOG")))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    for option in ("--no-access-log", "--access-log"):
        # ACCESS_LOG: None restores the variable afterwards (the command sets it).
        assert invoke(url, "serve", option, env={"ACCESS_LOG": None}).exit_code == 0
    assert seen == ["false", "true"]  # workers read their settings from the environment


def test_serve_refuses_bad_settings_before_starting(uvicorn_calls: list[Any]) -> None:
    result = invoke("sqlite://", "serve")
    assert_one_line_error(result, 2, "DATABASE_URL")
    assert uvicorn_calls == []


def test_serve_refuses_reload_with_workers(tmp_path: Path, uvicorn_calls: list[Any]) -> None:
    result = invoke(f"sqlite:///{tmp_path / 'x.db'}", "serve", "--reload", "--workers", "2")
    assert_one_line_error(result, 2, "--reload")
    assert uvicorn_calls == []


@pytest.fixture
def bootstrap_env() -> Iterator[None]:
    """`serve` marks its workers' environment once it created the first superuser: the
    mark must not leak into the tests that run after it in this process."""
    import os

    from catalog.api.app import BOOTSTRAPPED_ENV

    os.environ.pop(BOOTSTRAPPED_ENV, None)
    yield
    os.environ.pop(BOOTSTRAPPED_ENV, None)


ADMIN: dict[str, str | None] = {
    "FIRST_SUPERUSER_EMAIL": "Root@Example.com",
    "FIRST_SUPERUSER_PASSWORD": "root-pass-1",
}


@pytest.mark.usefixtures("bootstrap_env")
def test_serve_creates_the_first_superuser_once_before_the_workers(
    migrated_url: str, uvicorn_calls: list[Any]
) -> None:
    import os

    from catalog.api.app import BOOTSTRAPPED_ENV

    result = invoke(migrated_url, "serve", "--workers", "2", env=dict(ADMIN))
    assert result.exit_code == 0, result.output
    assert len(uvicorn_calls) == 1
    assert query(migrated_url, "SELECT email, is_superuser FROM users") == [
        ("root@example.com", True)
    ]
    assert os.environ[BOOTSTRAPPED_ENV] == "1"  # the workers skip it


@pytest.mark.usefixtures("bootstrap_env")
def test_serve_exits_non_zero_when_the_first_superuser_cannot_be_created(
    uvicorn_calls: list[Any],
) -> None:
    result = invoke(
        "postgresql://postgres@127.0.0.1:1/nowhere",
        "serve",
        "--workers",
        "2",
        "--wait-for-db",
        "0.5",
        env=dict(ADMIN),
    )
    assert_one_line_error(result, 1, "first superuser", "unavailable")
    assert uvicorn_calls == []


@pytest.mark.usefixtures("bootstrap_env")
def test_serve_refuses_a_first_superuser_the_api_would_refuse(
    migrated_url: str, uvicorn_calls: list[Any]
) -> None:
    env = ADMIN | {"FIRST_SUPERUSER_PASSWORD": "short"}
    result = invoke(migrated_url, "serve", env=env)
    assert_one_line_error(result, 2, "FIRST_SUPERUSER_PASSWORD", "8 to 128 characters")
    assert uvicorn_calls == []
    assert query(migrated_url, "SELECT id FROM users") == []


def test_serve_target_is_the_app_factory() -> None:
    from fastapi import FastAPI
    from uvicorn.importer import import_from_string

    from catalog.cli.serve import APP_FACTORY

    factory = import_from_string(APP_FACTORY)
    assert callable(factory)
    assert isinstance(factory(make_settings("sqlite:///./unused.db")), FastAPI)


async def test_users_commands_apply_the_apis_rules(migrated_url: str) -> None:
    """The CLI calls the API's services: a password set there revokes the tokens issued
    before it, deactivation blocks the account, and the email is normalized alike."""

    async def run(*args: str, input: str | None = None) -> None:
        # In a thread: the command runs its own event loop, as it does from a shell.
        result = await asyncio.to_thread(invoke, migrated_url, *args, input=input)
        assert result.exit_code == 0, result.output

    await run("users", "create", " Mixed@Example.COM", "--password-stdin", input="pw-one-11\n")
    settings = make_settings(migrated_url)
    database = Database.from_settings(settings)
    transport = httpx.ASGITransport(app=create_app(settings, database))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            login = {"username": "mixed@example.com", "password": "pw-one-11"}
            token = (await client.post("/auth/token", data=login)).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/users/me", headers=headers)).status_code == 200

            await run("users", "deactivate", "MIXED@example.com")
            assert (await client.get("/users/me", headers=headers)).status_code == 403
            await run("users", "activate", "mixed@example.com")
            assert (await client.get("/users/me", headers=headers)).status_code == 200

            await run("users", "set-password", "mixed@example.com", input="pw-two-22\n" * 2)
            assert (await client.get("/users/me", headers=headers)).status_code == 401
            login["password"] = "pw-two-22"
            assert (await client.post("/auth/token", data=login)).status_code == 200
    finally:
        await database.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.skipif(POOLER != "none", reason="behind a pooler the CLI sends no startup options")
def test_cli_statements_are_bounded_by_cli_statement_timeout_ms(database_url: str) -> None:
    """CLI_STATEMENT_TIMEOUT_MS: a CLI statement stuck behind a lock is cancelled at the
    bound (by default there is none: with the lock wait unbounded, DB_LOCK_TIMEOUT_MS=0,
    it would wait as long as the lock is held, here past the test's own 60 s bound)."""
    import psycopg

    with psycopg.connect(database_url) as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        done = subprocess.run(
            [str(Path(sys.executable).parent / "catalog"), "users", "list"],
            env=os.environ
            | {
                "DATABASE_URL": database_url,
                "SECRET_KEY": SECRET,
                "CLI_STATEMENT_TIMEOUT_MS": "300",
                "DB_LOCK_TIMEOUT_MS": "0",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        holder.rollback()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "statement timeout" in done.stderr, done.stderr


def test_db_downgrade_takes_a_relative_revision_as_alembic_does(fresh_url: str) -> None:
    """`catalog db downgrade -1` and `-2`: revisions, not options the command lacks."""
    revisions = ScriptDirectory.from_config(runner.alembic_config())
    one_back = str(revisions.get_revision(head_revision()).down_revision)
    two_back = str(revisions.get_revision(one_back).down_revision)
    assert invoke(fresh_url, "db", "upgrade").exit_code == 0

    result = invoke(fresh_url, "db", "downgrade", "-2")

    assert result.exit_code == 0, result.output
    assert invoke(fresh_url, "db", "current").stdout.strip() == two_back
