"""Fixtures: every test that asks for `client` or `database` runs on SQLite *and* PostgreSQL.

Each test run gets throwaway databases (an SQLite file in a temp dir, a PostgreSQL
database named catalog_test_<random>), built by the real migrations and dropped at the
end; tables are emptied after every test. PostgreSQL comes from TEST_POSTGRES_URL
(default: the local server). Off CI an unreachable server skips those tests with the
reason; with CI=true it fails the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import psycopg
import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import make_url

from catalog import security
from catalog.api.app import BOOTSTRAPPED_ENV, create_app
from catalog.config import Settings, load_settings
from catalog.db.database import Database
from catalog.db.engine import create_sync_engine
from catalog.migrations.runner import upgrade
from catalog.models import User
from catalog.security import create_access_token, credential_stamp, hash_password

DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# `make test-pgbouncer`: the PostgreSQL tests through a real PgBouncer in this pool mode.
POOLER = os.environ.get("TEST_DATABASE_POOLER", "none")
SECRET = "test-secret-key-" + "x" * 32
BACKENDS = ["sqlite", "postgresql"]
TABLES = ("item_tags", "items", "tags", "users", "idempotency_keys", "login_failures")
# Real-infrastructure fixtures (private PostgreSQL, replicas, PgBouncer, Patroni): deploy/.
pytest_plugins = ["tests.infra.fixtures"]


# --- nothing from the developer's shell ---------------------------------------------------

# Variables the service reads besides its Settings fields: prometheus-client's multiprocess
# directory, `catalog serve`'s note to its workers that the first superuser exists (set,
# it skips their bootstrap), OpenTelemetry's own OTEL_* variables (service name, headers,
# sampler...) and libpq's PG* (PGHOST, PGOPTIONS, PGSSLMODE...: psycopg applies them to
# every connection the URL leaves open).
OTHER_SERVICE_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", BOOTSTRAPPED_ENV)
OTHER_SERVICE_PREFIXES = ("OTEL_", "PG")
# Not libpq's: where deploy/ finds the PostgreSQL binaries, which the tests need.
KEPT_VARIABLES = ("PG_BIN",)


def service_variables(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The names in `environ` that the service would read: every Settings field (derived
    from the class, so a new setting is covered without editing this list) and the rest."""
    fields = {name.upper() for name in Settings.model_fields}
    return [
        name
        for name in environ
        if (
            name.upper() in fields
            or name in OTHER_SERVICE_VARIABLES
            or name.startswith(OTHER_SERVICE_PREFIXES)
        )
        and name not in KEPT_VARIABLES
    ]


def clear_service_environment() -> dict[str, str]:
    """Remove every variable the service reads from this process's environment (and so
    from every process the tests start); returns what was removed."""
    return {name: os.environ.pop(name) for name in service_variables(os.environ)}


# At import, before any test builds settings or starts a process: `METRICS=on` or a login
# limit in the developer's shell must not change what the tests see.
CLEARED_ENVIRONMENT = clear_service_environment()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The random order's seed again at the end (the header has it too, but not with -q)."""
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(
            f"random test order: replay it with -p randomly --randomly-seed={seed}"
        )


# --- Hypothesis: reproducible in CI, its files outside the working tree -------------------

# Everything Hypothesis stores (examples, the constants it collects from our modules, its
# Unicode tables) goes under the system's temp dir, per user and per checkout: by default
# it writes `.hypothesis/` into the current directory, the checkout. Set before any test
# runs, and in the environment for the pytest processes some tests start.
HYPOTHESIS_HOME = Path(
    os.environ.setdefault(
        "HYPOTHESIS_STORAGE_DIRECTORY",
        str(
            Path(tempfile.gettempdir())
            / f"catalog-hypothesis-{os.getuid()}"
            / hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:12]
        ),
    )
)
set_hypothesis_home_dir(HYPOTHESIS_HOME)
hypothesis.settings.register_profile(
    "ci",
    derandomize=True,  # the same examples on every run: a CI failure replays locally
    database=None,
    print_blob=True,
)
# Off CI, failing examples are remembered and tried first next time.
EXAMPLES_DIR = HYPOTHESIS_HOME / "examples"
hypothesis.settings.register_profile(
    "dev",
    database=DirectoryBasedExampleDatabase(EXAMPLES_DIR),
    print_blob=True,  # a failure prints the @reproduce_failure line
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


@pytest.fixture(autouse=True)
def _forget_verified_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no token remembered as verified (`security.VerifiedTokens`):
    one test's tokens must not skip the checks in another's."""
    monkeypatch.setattr(security, "_verified_tokens", security.VerifiedTokens(size=1024))


@pytest.fixture(autouse=True)
def _restore_hashing_pool() -> Iterator[None]:
    """`create_app` sizes the process-wide hashing pool from its settings: a test that
    builds an app with `PASSWORD_HASH_QUEUE=0` must not leave that pool to the next one."""
    pool = security._pool
    yield
    security.restore_hashing(pool)


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    """Argon2 at its cheapest: the tests check behaviour, not hash strength."""
    original = security._password_hash
    security._password_hash = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024),))
    security._dummy_hash.cache_clear()
    yield
    security._password_hash = original
    security._dummy_hash.cache_clear()


# --- throwaway databases ----------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _through_a_pooler() -> Iterator[None]:
    """With TEST_DATABASE_POOLER=transaction|session, every PostgreSQL test database is
    reached through a real PgBouncer in front of a private server started for the run."""
    if POOLER == "none":
        yield
        return
    from deploy.pgbouncer import PgBouncer
    from deploy.postgres import PostgresInstance
    from deploy.procs import MissingBinaryError

    from tests.infra.fixtures import missing_infrastructure

    try:
        with (
            PostgresInstance("pooled") as server,
            PgBouncer(
                server.port,
                pool_mode=POOLER,  # type: ignore[arg-type]
            ) as bouncer,
        ):
            os.environ["TEST_POSTGRES_URL"] = bouncer.url("postgres")
            yield
    except MissingBinaryError as error:
        missing_infrastructure(error)


def _postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)


@contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """Create an empty database on the test server; yield its URL; drop it afterwards."""
    admin = make_url(_postgres_admin_url()).set(drivername="postgresql")
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"catalog_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        message = f"PostgreSQL at {admin.render_as_string()} is unreachable: {error}".strip()
        if IN_CI:
            pytest.fail(f"CI requires PostgreSQL. {message}", pytrace=False)
        pytest.skip(f"{message} (set TEST_POSTGRES_URL)")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def throwaway_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    """An empty database of the given backend, as a DATABASE_URL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / f'catalog-{uuid.uuid4().hex[:8]}.db'}"
    else:
        with throwaway_postgres_database() as url:
            yield url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: a fixed key, the given database, nothing read from .env."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SECRET,
        "environment": "test",
        "database_pooler": POOLER,
        "_env_file": None,
    }
    return load_settings(**(values | overrides))


# For a test whose subject exists on SQLite only (e.g. a multi-statement transaction that
# PostgreSQL runs as one statement): not run, rather than skipped, on PostgreSQL.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
# The same for a test of something only a server database has.
postgresql_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def schema_objects(engine: Engine) -> set[tuple[str, ...]]:
    """PostgreSQL's indexes and constraints of the public schema, with their definitions."""
    with engine.connect() as connection:
        indexes = connection.execute(
            text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            )
        ).all()
        constraints = connection.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            )
        ).all()
    return {tuple(row) for row in [*indexes, *constraints]}


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test."""
    return str(request.param)


# The databases `database_url` handed out: the suite's own, emptied after every test that
# used them. (A module may define its own `database_url`, e.g. on a private server.)
SUITE_DATABASE_URLS: set[str] = set()
# One sync engine per suite database, for emptying it: a test need not have built the
# async `Database` to have written into the tables (a `catalog serve` it started did).
_CLEANING_ENGINES: dict[str, Engine] = {}

# Set by a LATER release's expand/contract test (tests/test_expand_contract.py), which runs
# this release's tests on a database it migrated to its own head: use that one as it is.
PREMIGRATED_URL_ENV = "CATALOG_TEST_PREMIGRATED_URL_{backend}"


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated throwaway database for this backend, shared by the session's tests."""
    premigrated = os.environ.get(PREMIGRATED_URL_ENV.format(backend=backend.upper()))
    with ExitStack() as stack:
        if premigrated:
            url = premigrated
        else:
            url = stack.enter_context(throwaway_database(backend, tmp_path_factory.mktemp(backend)))
            upgrade(make_settings(url))
        SUITE_DATABASE_URLS.add(url)
        try:
            yield url
        finally:
            engine = _CLEANING_ENGINES.pop(url, None)
            if engine is not None:
                engine.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The app's async database; emptied after each test by `_clean_tables`."""
    db = Database.from_settings(settings)
    yield db
    await db.dispose()


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty the tables after every test that used the suite's database, whether through
    `database` or through its URL alone (e.g. a `catalog serve` the test started)."""
    used = "database_url" in request.fixturenames  # `database` and `settings` include it
    url = request.getfixturevalue("database_url") if used else None
    yield
    if url in SUITE_DATABASE_URLS:
        # In a thread: the event loop goes on meanwhile, so a connection of the test's
        # that is still settling a cut-off statement (db/checkin.py) can end it and let
        # go of its locks.
        await asyncio.to_thread(empty_tables, url)


def empty_tables(url: str) -> None:
    """Delete every row of the app's tables in the suite database at `url`."""
    engine = _CLEANING_ENGINES.get(url)
    if engine is None:
        # Pre-ping: a test may have terminated the pool's connection (pg_terminate_backend).
        engine = create_sync_engine(make_settings(url, db_pool_pre_ping=True))
        _CLEANING_ENGINES[url] = engine
    with engine.begin() as connection:
        _delete_rows(connection)


def _delete_rows(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # A lock a test left held fails the cleanup loudly rather than hanging the suite.
        connection.execute(text("SET LOCAL lock_timeout = '30s'"))
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    else:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))
        # AUTOINCREMENT counters: ids restart at 1, as RESTART IDENTITY does above.
        connection.execute(text("DELETE FROM sqlite_sequence"))


# --- the app and its clients ------------------------------------------------------------


@pytest.fixture(scope="session")
def app(settings: Settings, database: Database) -> Any:
    return create_app(settings, database)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (no lifespan: the fixtures own it)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@dataclass
class Account:
    """A user created for a test, with the password and a valid bearer header."""

    id: int
    email: str
    password: str
    headers: dict[str, str] = field(repr=False)


MakeUser = Callable[..., Awaitable[Account]]


@pytest.fixture
def make_user(database: Database) -> MakeUser:
    """Factory: insert a user directly, returning an Account with auth headers."""
    counter = iter(range(1, 10_000))

    async def _make(
        email: str | None = None,
        password: str = "password123",
        *,
        is_superuser: bool = False,
        is_active: bool = True,
        full_name: str | None = None,
    ) -> Account:
        email = (email or f"user{next(counter)}@example.com").lower()
        hashed = hash_password(password)
        async with database.transaction() as session:
            user = User(
                email=email,
                hashed_password=hashed,
                is_superuser=is_superuser,
                is_active=is_active,
                full_name=full_name,
            )
            session.add(user)
            await session.flush()
            user_id = user.id
        token = create_access_token(user_id, SECRET, 60, stamp=credential_stamp(hashed, SECRET))
        return Account(user_id, email, password, {"Authorization": f"Bearer {token}"})

    return _make


@pytest.fixture
async def user(make_user: MakeUser) -> Account:
    return await make_user("alice@example.com")


@pytest.fixture
async def other_user(make_user: MakeUser) -> Account:
    return await make_user("bob@example.com")


@pytest.fixture
async def superuser(make_user: MakeUser) -> Account:
    return await make_user("root@example.com", is_superuser=True)


# --- observing the database ---------------------------------------------------------------


class StatementCounter:
    """Counts the SQL statements an engine sends (BEGIN/COMMIT included where visible)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self) -> None:
        self.statements.clear()


@pytest.fixture
def count_statements(database: Database) -> Iterator[StatementCounter]:
    """Record every statement the app's engine executes during the test."""
    counter = StatementCounter()

    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counter.statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", _record)
    yield counter
    event.remove(database.engine.sync_engine, "before_cursor_execute", _record)


@pytest.fixture
def fetch(database: Database) -> Any:
    """Run a SELECT in a fresh session and return all rows: the database's truth."""

    async def _fetch(sql: str, **params: Any) -> list[Any]:
        async with database.autocommit_session() as session:
            return list((await session.execute(text(sql), params)).all())

    return _fetch


@asynccontextmanager
async def refusing_tag_links(database: Database) -> AsyncIterator[None]:
    """Make the database itself refuse every new item_tags row (a trigger), then undo it.

    A failure inside the database, after the item row was written by the same
    statement or transaction: what it leaves behind shows whether the write is atomic.
    """
    if database.backend.name == "postgresql":
        create = [
            "CREATE FUNCTION refuse_tag_links() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'tag links refused' USING ERRCODE = 'check_violation'; END $$",
            "CREATE TRIGGER refuse_tag_links BEFORE INSERT ON item_tags "
            "FOR EACH ROW EXECUTE FUNCTION refuse_tag_links()",
        ]
        drop = [
            "DROP TRIGGER refuse_tag_links ON item_tags",
            "DROP FUNCTION refuse_tag_links()",
        ]
    else:
        create = [
            # SQLite checks a CREATE's name against this connection's cached schema before
            # it notices that another connection changed the schema (dropped the trigger
            # after an earlier test): a read first makes it reload the schema.
            "SELECT count(*) FROM sqlite_master",
            "CREATE TRIGGER refuse_tag_links BEFORE INSERT ON item_tags "
            "BEGIN SELECT RAISE(ABORT, 'tag links refused'); END",
        ]
        drop = ["DROP TRIGGER refuse_tag_links"]
    async with database.transaction() as session:
        for statement in create:
            await session.execute(text(statement))
    try:
        yield
    finally:
        async with database.transaction() as session:
            for statement in drop:
                await session.execute(text(statement))


@pytest.fixture
async def refuse_tag_links(database: Database) -> AsyncIterator[None]:
    """`refusing_tag_links` for the whole test."""
    async with refusing_tag_links(database):
        yield
