"""Settings: defaults, environment and `.env`, URL resolution, and refusals at start-up.

Every test runs in an empty temporary directory with the service's variables removed from
the environment, so neither the developer's `.env` nor their shell leaks in.
"""

from __future__ import annotations

import multiprocessing
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from catalog.config import (
    DEFAULT_DATABASE_URL,
    Settings,
    SettingsError,
    get_settings,
    load_settings,
)
from catalog.db.urls import resolve_urls

STRONG_KEY = "k3y-" + "A1b2C3d4" * 6


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No service variable from the caller's shell, no `.env` in the working directory."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def settings_error(**values: object) -> str:
    """The message of the SettingsError that loading these values raises."""
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, **values)
    return str(caught.value)


# --- defaults and sources -----------------------------------------------------------------


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./catalog.db"
    assert (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_timeout) == (
        20,
        0,
        2.0,  # a bounded wait: load beyond the pool is shed with 503, not queued for 30 s
    )
    # Every wait on the database is bounded by default, and the request as a whole too.
    assert settings.db_statement_timeout_ms == 5000
    assert settings.db_lock_timeout_ms == 2000
    assert settings.db_connect_timeout == 3.0
    assert settings.request_timeout == 10.0
    assert settings.shutdown_timeout == 20  # below a typical 30 s orchestrator grace period
    assert settings.environment == "development"
    assert settings.secret_key is None
    assert settings.log_level == "INFO"
    assert settings.access_token_expire_minutes == 60
    assert settings.first_superuser_email is None


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example/catalog")
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "4")
    monkeypatch.setenv("DB_POOL_TIMEOUT", "2.5")
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "5")
    settings = load_settings()
    assert settings.database_url == "postgresql://u:p@db.example/catalog"
    assert (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_timeout) == (
        3,
        4,
        2.5,
    )
    assert settings.access_token_expire_minutes == 5


def test_dotenv_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///./from-dotenv.db\nLOG_LEVEL=debug\n")
    settings = load_settings()
    assert settings.database_url == "sqlite:///./from-dotenv.db"
    assert settings.log_level == "DEBUG"


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///./from-dotenv.db\n")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./from-env.db")
    assert load_settings().database_url == "sqlite:///./from-env.db"


def test_explicit_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / "elsewhere" / "service.env"
    env_file.parent.mkdir()
    env_file.write_text("DB_POOL_SIZE=7\n")
    assert load_settings(_env_file=env_file).db_pool_size == 7
    assert load_settings(_env_file=None).db_pool_size == 20


def test_get_settings_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    first = get_settings()
    monkeypatch.setenv("DB_POOL_SIZE", "4")
    assert get_settings() is first
    assert first.db_pool_size == 3


@pytest.mark.parametrize("given", ["debug", "Warning", "ERROR"])
def test_log_level_is_case_insensitive(given: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", given)
    assert load_settings().log_level == given.upper()


def test_unknown_log_level_names_the_variable() -> None:
    message = settings_error(log_level="verbose")
    assert "LOG_LEVEL" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [("DB_POOL_SIZE", "0"), ("DB_POOL_TIMEOUT", "0"), ("DB_MAX_OVERFLOW", "-1")],
)
def test_invalid_pool_setting_names_the_variable(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name) as caught:
        load_settings()
    assert "\n" not in str(caught.value)


# --- DATABASE_URL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "async_url", "sync_url"),
    [
        (
            "postgresql://u:p@h:5433/db",
            "postgresql+asyncpg://u:p@h:5433/db",
            "postgresql+psycopg://u:p@h:5433/db",
        ),
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        (
            "postgresql+asyncpg://u@h/db",
            "postgresql+asyncpg://u@h/db",
            "postgresql+psycopg://u@h/db",
        ),
        (
            "postgresql+psycopg://u@h/db",
            "postgresql+asyncpg://u@h/db",
            "postgresql+psycopg://u@h/db",
        ),
        ("sqlite:///rel/c.db", "sqlite+aiosqlite:///rel/c.db", "sqlite+pysqlite:///rel/c.db"),
        ("sqlite:////abs/c.db", "sqlite+aiosqlite:////abs/c.db", "sqlite+pysqlite:////abs/c.db"),
        ("sqlite+aiosqlite:///c.db", "sqlite+aiosqlite:///c.db", "sqlite+pysqlite:///c.db"),
        ("sqlite+pysqlite:///c.db", "sqlite+aiosqlite:///c.db", "sqlite+pysqlite:///c.db"),
    ],
)
def test_one_url_gives_both_drivers(given: str, async_url: str, sync_url: str) -> None:
    urls = resolve_urls(given)
    assert urls.async_url.render_as_string(hide_password=False) == async_url
    assert urls.sync_url.render_as_string(hide_password=False) == sync_url
    assert load_settings(database_url=given).database_url == given


def test_sqlite_paths_are_kept() -> None:
    assert resolve_urls("sqlite:///rel/c.db").sync_url.database == "rel/c.db"
    assert resolve_urls("sqlite:////abs/c.db").async_url.database == "/abs/c.db"


@pytest.mark.parametrize("spelling", ["sslmode", "ssl"])
def test_tls_mode_is_spelled_for_each_driver(spelling: str) -> None:
    """libpq says `sslmode`, asyncpg says `ssl`: either spelling reaches both drivers."""
    urls = resolve_urls(f"postgresql://u@h/db?{spelling}=require&application_name=x")
    # application_name is libpq's alone (asyncpg.connect() would refuse the keyword).
    assert dict(urls.async_url.query) == {"ssl": "require"}
    assert dict(urls.sync_url.query) == {"sslmode": "require", "application_name": "x"}


def test_driver_specific_options_go_to_their_driver_only() -> None:
    urls = resolve_urls(
        "postgresql://u@h/db?command_timeout=3&statement_cache_size=0"
        "&connect_timeout=2&target_session_attrs=read-write&some_option=1"
    )
    assert dict(urls.async_url.query) == {
        "command_timeout": "3",
        "statement_cache_size": "0",
        "some_option": "1",  # unknown to both lists: both get it
    }
    assert dict(urls.sync_url.query) == {
        "connect_timeout": "2",
        "target_session_attrs": "read-write",
        "some_option": "1",
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("mysql://u:p@h/db", "backend 'mysql' is not supported"),
        ("postgresql+psycopg2://u@h/db", "driver 'psycopg2' is not supported"),
        ("sqlite+pysqlcipher:///c.db", "driver 'pysqlcipher' is not supported"),
        ("not a url", "not a valid database URL"),
        ("", "not a valid database URL"),
        ("sqlite://", "must name an SQLite file"),
        ("sqlite:///:memory:", "must name an SQLite file"),
        ("sqlite+aiosqlite://", "must name an SQLite file"),
        ("postgresql://u@h", "must name a PostgreSQL database"),
    ],
)
def test_unusable_url_is_one_line_naming_the_variable(
    given: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert expected in message
    assert "DATABASE_URL" in message
    assert "\n" not in message
    assert message.count("DATABASE_URL") == 1, message  # not "DATABASE_URL: DATABASE_URL ..."


def test_malformed_url_error_hides_the_password() -> None:
    message = settings_error(database_url="postgresql://me:hunter2@h:notaport/db")
    assert "DATABASE_URL" in message
    assert "hunter2" not in message


# --- SECRET_KEY -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"secret_key": ""},
        {"secret_key": "short-but-secret"},
        {"secret_key": "changethis"},
        {"secret_key": "CHANGEthis"},
    ],
    ids=["missing", "empty", "short", "changethis", "changethis-any-case"],
)
def test_production_refuses_a_missing_or_weak_key(values: dict[str, str]) -> None:
    message = settings_error(environment="production", **values)
    assert "SECRET_KEY" in message
    assert "\n" not in message
    if values.get("secret_key"):
        assert values["secret_key"] not in message


def test_production_refusal_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "changethis")
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load_settings()


def test_production_accepts_a_strong_key() -> None:
    settings = load_settings(environment="production", secret_key=STRONG_KEY)
    assert settings.signing_key() == STRONG_KEY
    assert not settings.secret_key_file.exists()


def test_configured_key_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    settings = load_settings(secret_key="any-key-outside-production", secret_key_file=key_file)
    assert settings.signing_key() == "any-key-outside-production"
    assert not key_file.exists()


def test_development_key_is_created_once_and_private(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    settings = load_settings(secret_key_file=key_file)
    assert not key_file.exists()  # nothing happens until the key is needed
    key = settings.signing_key()
    assert len(key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings.signing_key() == key
    # Another instance (another worker, a restart) finds the same key.
    assert load_settings(secret_key_file=key_file).signing_key() == key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]  # no temporary left over


def test_default_key_file_is_in_the_working_directory_and_git_ignored(tmp_path: Path) -> None:
    key = load_settings().signing_key()
    assert (tmp_path / ".secret_key").read_text().strip() == key
    gitignore = Path(__file__).resolve().parents[1] / ".gitignore"
    assert ".secret_key" in gitignore.read_text().split()


def _signing_key_after(barrier: Any, key_file: str) -> str:
    """Wait for every racer (a thread or process barrier), then ask for the key."""
    barrier.wait()
    return load_settings(_env_file=None, secret_key_file=key_file).signing_key()


def _process_worker(barrier: Any, key_file: str, keys: Any) -> None:
    """Child process body: report the key this process ended up with."""
    keys.put(_signing_key_after(barrier, key_file))


def test_concurrent_processes_agree_on_one_key(tmp_path: Path) -> None:
    """Workers starting together each find no key: exactly one key must win."""
    workers = 8
    key_file = tmp_path / "key"
    # fork: the children only build settings and touch files, and "spawn" would cost each
    # of them a cold interpreter start importing pydantic and SQLAlchemy.
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers)
    keys = context.Queue()
    processes = [
        context.Process(target=_process_worker, args=(barrier, str(key_file), keys))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    results = [keys.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len(set(results)) == 1
    assert key_file.read_text().strip() == results[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


def test_concurrent_threads_agree_on_one_key(tmp_path: Path) -> None:
    """Threads of one process race too (they share a pid); repeated to catch the window."""
    workers = 8
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for attempt in range(20):
            key_file = tmp_path / f"key-{attempt}"
            barrier = threading.Barrier(workers)
            futures = [
                pool.submit(_signing_key_after, barrier, str(key_file)) for _ in range(workers)
            ]
            keys = {future.result() for future in futures}
            assert len(keys) == 1, f"attempt {attempt}: {len(keys)} different keys"
            assert key_file.read_text().strip() in keys
    assert all(not p.name.endswith(".tmp") for p in tmp_path.iterdir())


# --- first superuser ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [{"first_superuser_email": "root@example.com"}, {"first_superuser_password": "pw-123456"}],
    ids=["email-only", "password-only"],
)
def test_first_superuser_needs_email_and_password(values: dict[str, str]) -> None:
    message = settings_error(**values)
    assert "FIRST_SUPERUSER_EMAIL" in message
    assert "\n" not in message


def test_first_superuser_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRST_SUPERUSER_EMAIL", "root@example.com")
    monkeypatch.setenv("FIRST_SUPERUSER_PASSWORD", "pw-123456")
    settings = load_settings()
    assert settings.first_superuser_email == "root@example.com"
    assert settings.first_superuser_password is not None
    assert settings.first_superuser_password.get_secret_value() == "pw-123456"
    assert "pw-123456" not in repr(settings)


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.db_pool_size = 99  # type: ignore[misc]


def test_unknown_environment_names_the_variable() -> None:
    assert "ENVIRONMENT" in settings_error(environment="staging")


# --- the web admin ----------------------------------------------------------------------------


def test_the_admin_is_off_by_default() -> None:
    settings = load_settings(_env_file=None)
    assert settings.admin is False
    assert settings.admin_session_minutes == 60


@pytest.mark.parametrize(("given", "expected"), [("on", True), ("off", False), ("true", True)])
def test_admin_is_switched_by_the_environment(
    given: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN", given)
    assert load_settings(_env_file=None).admin is expected


def test_admin_with_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN", "maybe")
    with pytest.raises(SettingsError, match=r"^invalid configuration: ADMIN: "):
        load_settings(_env_file=None)


@pytest.mark.parametrize(
    ("values", "secure"),
    [
        ({}, False),
        ({"admin_https_only": True}, True),
        ({"environment": "production", "secret_key": STRONG_KEY}, True),
        ({"environment": "production", "secret_key": STRONG_KEY, "admin_https_only": True}, True),
    ],
)
def test_the_admin_cookie_is_https_only_in_production_or_when_asked(
    values: dict[str, Any], secure: bool
) -> None:
    assert load_settings(_env_file=None, **values).admin_cookie_secure() is secure


def test_production_refuses_an_admin_cookie_over_plain_http() -> None:
    message = settings_error(
        environment="production", secret_key=STRONG_KEY, admin_https_only=False
    )
    assert message.startswith("invalid configuration: ADMIN_HTTPS_ONLY=false is refused")


@pytest.mark.parametrize("minutes", [0, 24 * 60 + 1])
def test_admin_session_minutes_are_bounded(minutes: int) -> None:
    assert "ADMIN_SESSION_MINUTES" in settings_error(admin_session_minutes=minutes)


# --- weak settings (issue 7) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "a" * 32,  # before: accepted (long enough, no entropy)
        "a" * 64,
        "password" * 4,
        "changeme" * 8,
        "ab" * 32,
        "0123456" * 6,
    ],
)
def test_production_refuses_a_low_entropy_key(key: str) -> None:
    message = settings_error(environment="production", secret_key=key)
    assert message.startswith("invalid configuration: SECRET_KEY is too weak for production")
    assert "\n" not in message


@pytest.mark.parametrize("environment", ["production", "development", "test"])
@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_key_is_refused_everywhere(environment: str, key: str) -> None:
    # Before: it started, then every login was a 500.
    message = settings_error(environment=environment, secret_key=key)
    assert "SECRET_KEY is empty" in message


@pytest.mark.parametrize(
    "key",
    [
        "0123456789abcdef" * 2,  # 32 hex digits: every one distinct
        "kQ2x9-Vb_m3ZtR8pLw4nYc7sHd1gFj6A",
        STRONG_KEY,
    ],
)
def test_production_accepts_random_keys(key: str) -> None:
    assert load_settings(environment="production", secret_key=key).environment == "production"


def test_random_keys_always_pass_the_entropy_check() -> None:
    import secrets

    from catalog.hardening import check_secret_key

    for _ in range(2000):
        for key in (secrets.token_urlsafe(32), secrets.token_hex(32)):
            check_secret_key(SecretStr(key), production=True)


@pytest.mark.parametrize("email", ["admin", "admin@", "@example.com", "a b@example.com"])
@pytest.mark.parametrize("environment", ["production", "development"])
def test_a_first_superuser_email_that_is_not_an_email_is_refused(
    email: str, environment: str
) -> None:
    message = settings_error(
        environment=environment,
        secret_key=STRONG_KEY,
        first_superuser_email=email,
        first_superuser_password="a-long-and-unusual-passphrase",
    )
    assert "FIRST_SUPERUSER_EMAIL is not an email address" in message


# --- operating: metrics, logs, tracing ------------------------------------------------------


def test_operating_defaults_publish_nothing() -> None:
    settings = load_settings(_env_file=None)
    assert settings.metrics == "off"
    assert settings.access_log is True
    assert settings.tracing_enabled is False


@pytest.mark.parametrize(
    ("given", "expected"), [("off", "off"), ("ON", "on"), (" on ", "on"), ("9100", 9100)]
)
def test_metrics_is_off_on_or_a_port(
    given: str, expected: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRICS", given)
    assert load_settings(_env_file=None).metrics == expected


@pytest.mark.parametrize("given", ["yes", "0", "65536", "-1", "9100.5", ""])
def test_a_bad_metrics_value_names_the_variable(given: str) -> None:
    message = settings_error(metrics=given)
    assert message.startswith("invalid configuration: METRICS must be off, on, or a port")
    assert "\n" not in message


@pytest.mark.parametrize(
    "password",
    ["changethis", "short-pw", "password123", "admin123", "aaaaaaaaaaaaaaa", "rootadmin1"],
)
def test_production_refuses_a_weak_first_superuser_password(password: str) -> None:
    message = settings_error(
        environment="production",
        secret_key=STRONG_KEY,
        first_superuser_email="rootadmin1@example.com",
        first_superuser_password=password,
    )
    assert message.startswith("invalid configuration: FIRST_SUPERUSER_PASSWORD is too weak")


def test_production_accepts_a_strong_first_superuser() -> None:
    settings = load_settings(
        environment="production",
        secret_key=STRONG_KEY,
        first_superuser_email="admin@example.com",
        first_superuser_password="correct horse battery staple",
    )
    assert settings.first_superuser_email == "admin@example.com"


def test_development_accepts_an_eight_character_first_superuser_password() -> None:
    settings = load_settings(
        first_superuser_email="a@example.com", first_superuser_password="password"
    )
    assert settings.first_superuser_password is not None


@pytest.mark.parametrize("password", ["x", "x" * 129])
def test_a_first_superuser_password_registration_would_refuse_is_refused(password: str) -> None:
    # Before: the service started, then failed in its lifespan with a traceback.
    message = settings_error(
        first_superuser_email="a@example.com", first_superuser_password=password
    )
    assert "FIRST_SUPERUSER_PASSWORD must be 8 to 128 characters" in message


# --- limits, headers and URLs (issue 7) ------------------------------------------------------


def test_issue_7_defaults() -> None:
    settings = load_settings()
    assert (settings.max_tag_filters, settings.max_body_bytes) == (10, 1024 * 1024)
    assert (settings.max_query_string_bytes, settings.max_query_params) == (16384, 50)
    assert settings.password_hash_threads >= 1
    assert settings.password_hash_queue == 16
    assert (settings.login_max_failures, settings.login_max_failures_per_address) == (5, 50)
    assert (settings.login_failure_window_seconds, settings.login_lockout_max_seconds) == (900, 900)
    assert settings.public_base_url is None
    assert settings.allowed_hosts == settings.cors_origins == settings.trusted_proxies == ()
    assert settings.docs_enabled is True


def test_lists_are_comma_separated_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.com, *.example.org")
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example.com")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1,10.0.0.2")
    monkeypatch.setenv("DOCS_ENABLED", "false")
    settings = load_settings()
    assert settings.allowed_hosts == ("api.example.com", "*.example.org")
    assert settings.cors_origins == ("https://app.example.com",)
    assert settings.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    assert settings.docs_enabled is False


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"max_tag_filters": 0}, "MAX_TAG_FILTERS"),
        ({"max_tag_filters": 21}, "MAX_TAG_FILTERS"),
        ({"max_body_bytes": 10}, "MAX_BODY_BYTES"),
        ({"max_query_params": 1}, "MAX_QUERY_PARAMS"),
        ({"password_hash_threads": 0}, "PASSWORD_HASH_THREADS"),
        ({"login_max_failures": 0}, "LOGIN_MAX_FAILURES"),
        ({"public_base_url": "ftp://x"}, "PUBLIC_BASE_URL"),
        ({"public_base_url": "https://x.example/?a=1"}, "PUBLIC_BASE_URL"),
    ],
)
def test_invalid_limits_name_the_variable(values: dict[str, object], variable: str) -> None:
    assert variable in settings_error(**values)


def test_public_base_url_loses_its_trailing_slash() -> None:
    settings = load_settings(public_base_url="https://api.example.com/catalog/")
    assert settings.public_base_url == "https://api.example.com/catalog"


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## The API")]
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in table]
    assert missing == []


@pytest.mark.parametrize(
    ("environment", "log_format", "json_logs"),
    [
        ("development", None, False),  # a terminal: text
        ("production", None, True),  # production: JSON unless told otherwise
        ("production", "text", False),
        ("development", "JSON", True),
    ],
)
def test_log_format_defaults_to_json_in_production(
    environment: str, log_format: str | None, json_logs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("SECRET_KEY", STRONG_KEY)
    if log_format is not None:
        monkeypatch.setenv("LOG_FORMAT", log_format)
    assert load_settings(_env_file=None).json_logs is json_logs


def test_unknown_log_format_names_the_variable() -> None:
    assert "LOG_FORMAT" in settings_error(log_format="xml")


@pytest.mark.parametrize(
    ("variables", "enabled"),
    [
        ({}, False),
        ({"TRACING": "true"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ],
)
def test_tracing_is_on_with_the_setting_or_an_otlp_endpoint(
    variables: dict[str, str], enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert load_settings(_env_file=None).tracing_enabled is enabled
