"""Application settings, read once from the environment and an optional `.env` file."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from catalog.hardening import check_first_superuser, check_secret_key

DEFAULT_DATABASE_URL = "sqlite:///./catalog.db"
# A list setting is comma-separated text in the environment ("a.example,b.example").
TextList = Annotated[tuple[str, ...], NoDecode]


def comma_separated(value: object) -> object:
    """ "a, b" -> ("a", "b"); other values (already lists, None) are left to validation."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# METRICS: "off", "on" (at /metrics on the main port) or a loopback port of its own.
MetricsExposure = Literal["off", "on"] | int


class SettingsError(ValueError):
    """Configuration is invalid; the message is one line and names the variable."""


class Settings(BaseSettings):
    """Every knob of the service. Environment variables use the upper-case field name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    # Overflow connections are closed when returned, so load that stays above the pool
    # size opens a connection per request (measured: 4.6x fewer requests/s). Size the
    # pool for the steady load of one worker and keep overflow for rare bursts.
    db_pool_size: int = Field(default=20, ge=1, le=1000)
    db_max_overflow: int = Field(default=0, ge=0, le=1000)
    # How long a request waits for a pooled connection before it is shed with a 503:
    # under overload, queueing longer only makes every client wait.
    db_pool_timeout: float = Field(default=2.0, gt=0)
    db_pool_recycle: int = Field(default=1800, ge=-1)
    # Off by default: a ping is one more round trip on every checkout. Dead pooled
    # connections are detected without one (see db/backends.py).
    db_pool_pre_ping: bool = False
    db_echo: bool = False
    # SQLite only: how long a writer waits for the lock before giving up.
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    # SQLite only: how much of the database file each connection reads through a memory
    # map instead of its own 2 MB page cache (one read() per page it misses). 0: off.
    sqlite_mmap_mb: int = Field(default=1024, ge=0, le=2047)

    # What sits between the service and PostgreSQL: a transaction-mode pooler (PgBouncer)
    # breaks prepared statements, startup parameters and session state; session mode
    # breaks startup parameters. See docs/scaling.md.
    database_pooler: Literal["none", "session", "transaction"] = "none"
    # Streaming replicas of DATABASE_URL for plain reads (comma-separated), and how far
    # behind one may be before reads skip it (see docs/scaling.md: read-your-writes).
    database_replica_urls: TextList = ()
    replica_max_lag_seconds: float = Field(default=5.0, gt=0)

    # --- time bounds (issue 8): every wait ends, and an outage is a 503, not a hang ---
    db_connect_timeout: float = Field(default=3.0, gt=0)
    # API connections; 0 turns a bound off. The CLI and migrations have their own.
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    db_lock_timeout_ms: int = Field(default=2000, ge=0)
    cli_statement_timeout_ms: int = Field(default=0, ge=0)
    # Migration DDL waiting on a busy table fails fast instead of queueing every query
    # behind it; waiting for another instance's migration is bounded separately.
    migration_lock_timeout_ms: int = Field(default=5000, ge=0)
    migration_wait_timeout_s: int = Field(default=300, ge=1)
    # `catalog serve` on a database a newer release migrated: refuse, or serve (a previous
    # release's instance during a rolling upgrade, on an expand-only schema).
    unknown_schema_revision: Literal["refuse", "serve"] = "refuse"
    # `catalog db upgrade` backs the database up first (auto: when ENVIRONMENT=production)
    # into this directory, and refuses to migrate if that backup fails.
    migration_backup: Literal["auto", "always", "never"] = "auto"
    migration_backup_dir: Path = Path("backups")
    # The whole request, from the first byte to the response (a backstop for waits the
    # database cannot time out, e.g. a frozen server).
    request_timeout: float = Field(default=10.0, gt=0)
    retry_after_seconds: int = Field(default=2, ge=1, le=3600)
    # `catalog serve`: how long in-flight requests may finish after SIGTERM (below the
    # usual 30 s orchestrator grace period).
    shutdown_timeout: int = Field(default=20, ge=1)

    # --- safe retries and edits ---
    idempotency_key_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    require_if_match: bool = False

    secret_key: SecretStr | None = None
    secret_key_file: Path = Path(".secret_key")
    access_token_expire_minutes: int = Field(default=60, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None

    # The web admin at /admin (catalog.admin): off unless asked for, as it is one more
    # place that accepts logins. Its session cookie is Secure when ADMIN_HTTPS_ONLY says so,
    # and always in production (unset means "in production only").
    admin: bool = False
    admin_https_only: bool | None = None
    admin_session_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # --- bounded work per request (see README: "Limits") ---
    # Each `tag` filter is one EXISTS semi-join; PostgreSQL's planning time and memory grow
    # with every one (100 took 3.4 s and 230 MiB). 20 is the most that stays cheap.
    max_tag_filters: int = Field(default=10, ge=1, le=20)
    # `count=true` counts at most this many matching rows (exact up to here, then a lower
    # bound flagged by X-Total-Count-Exact: false), so a total costs about what a page does.
    count_exact_limit: int = Field(default=10_000, ge=1, le=10_000_000)
    # Item lists refuse a larger `skip` (400 naming cursor pagination): an offset costs a
    # row visit per skipped row; a cursor page costs the same at any depth.
    max_offset: int = Field(default=10_000, ge=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The longest legitimate list query (10 tags, `q`, a cursor, all percent-encoded
    # 4-byte UTF-8) is about 11 kB.
    max_query_string_bytes: int = Field(default=16 * 1024, ge=1024)
    max_query_params: int = Field(default=50, ge=10)
    # Argon2 takes ~29 ms of a core: at most this many hashes run at once per worker, and
    # at most `password_hash_queue` more wait; beyond that, 503 + Retry-After.
    password_hash_threads: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 1) // 2), ge=1, le=64
    )
    password_hash_queue: int = Field(default=16, ge=0, le=10_000)

    # --- accounts ---
    login_max_failures: int = Field(default=5, ge=1)  # per account and address, before back-off
    login_max_failures_per_address: int = Field(default=50, ge=1)  # per client address
    login_max_failures_per_account: int = Field(default=100, ge=1)  # per account, all addresses
    # Registrations one client address may have in progress at once, per worker (429 past).
    registrations_per_address: int = Field(default=2, ge=1, le=1000)
    login_failure_window_seconds: int = Field(default=900, ge=1)  # idle time that resets
    login_lockout_max_seconds: int = Field(default=900, ge=1)  # the longest back-off

    # --- headers and URLs ---
    # `catalog serve`: the longest request head (request line and headers; 431 past it), and
    # how long a head may take to arrive (408 and the connection closed past it).
    max_header_bytes: int = Field(default=32768, ge=1024, le=1024 * 1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    public_base_url: str | None = None  # absolute Link targets; relative when unset
    allowed_hosts: TextList = ()  # Host header values accepted; any when empty
    cors_origins: TextList = ()  # origins allowed by CORS; none when empty
    docs_enabled: bool = True  # /docs, /redoc and /openapi.json
    # Peers whose X-Forwarded-For uvicorn believes (`catalog serve`); none by default.
    trusted_proxies: TextList = ()

    @field_validator("database_replica_urls")
    @classmethod
    def _check_replica_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not can_have_replicas(url):
                raise ValueError("DATABASE_REPLICA_URLS must name PostgreSQL replicas")
        return value

    @field_validator(
        "allowed_hosts", "cors_origins", "trusted_proxies", "database_replica_urls", mode="before"
    )
    @classmethod
    def _split_lists(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("public_base_url")
    @classmethod
    def _check_public_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError("PUBLIC_BASE_URL must be an http(s) URL without a query")
        return value.rstrip("/")

    # Operating (README "Operating"): what the service tells about itself.
    metrics: MetricsExposure = "off"
    log_format: Literal["text", "json"] | None = None  # None: json in production, else text
    access_log: bool = True  # one log line per request (ours; uvicorn's is turned off)
    tracing: bool = False  # also on whenever OTEL_EXPORTER_OTLP_ENDPOINT is set
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("metrics", mode="before")
    @classmethod
    def _parse_metrics(cls, value: object) -> object:
        text = str(value).strip().lower()
        if text in ("off", "on"):
            return text
        if text.isascii() and text.isdigit() and 0 < int(text) < 65536:
            return int(text)
        raise ValueError("METRICS must be off, on, or a port number (1-65535)")

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @property
    def json_logs(self) -> bool:
        """Whether log lines are JSON (LOG_FORMAT, or by default in production)."""
        if self.log_format is None:
            return self.environment == "production"
        return self.log_format == "json"

    @property
    def tracing_enabled(self) -> bool:
        """Whether requests and statements are traced (TRACING or an OTLP endpoint)."""
        return self.tracing or bool(self.otel_exporter_otlp_endpoint)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from catalog.db.urls import resolve_urls  # local import: db depends on config

        resolve_urls(value)  # raises ValueError with a readable message
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if (self.first_superuser_email is None) != (self.first_superuser_password is None):
            raise ValueError("FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD go together")
        if self.database_replica_urls and not can_have_replicas(self.database_url):
            raise ValueError("DATABASE_REPLICA_URLS needs a PostgreSQL DATABASE_URL")
        production = self.environment == "production"
        if production and self.admin_https_only is False:
            raise ValueError(
                "ADMIN_HTTPS_ONLY=false is refused when ENVIRONMENT=production: the admin "
                "session cookie would be sent over plain HTTP"
            )
        check_secret_key(self.secret_key, production=production)
        if self.first_superuser_email is not None and self.first_superuser_password is not None:
            check_first_superuser(
                self.first_superuser_email,
                self.first_superuser_password.get_secret_value(),
                production=production,
            )
        return self

    def admin_cookie_secure(self) -> bool:
        """Whether the admin session cookie is sent over HTTPS only."""
        if self.admin_https_only is None:
            return self.environment == "production"
        return self.admin_https_only

    def signing_key(self) -> str:
        """The JWT signing key: the configured one, or a development key kept on disk."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _local_development_key(self.secret_key_file)


def _local_development_key(path: Path) -> str:
    """Read the local key, creating it exactly once even with several workers racing."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    # A name unique per call (not per process: threads race too), created 0600 from the
    # start so the key is never readable by others, not even briefly.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    try:
        # link() fails if another worker won the race; then its key is the key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def _one_line(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]).upper()
        message = str(item["msg"]).removeprefix("Value error, ")
        named = not field or message.startswith(field)
        parts.append(message if named else f"{field}: {message}")
    return "invalid configuration: " + "; ".join(parts)


def can_have_replicas(url: str) -> bool:
    """Whether the database `url` names can have streaming read replicas."""
    from catalog.db.urls import supports_replicas  # local import: db depends on config

    return supports_replicas(url)


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached: the environment is read once)."""
    return load_settings()
