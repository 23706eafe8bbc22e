"""PostgreSQL: `pg_dump` custom format out, `pg_restore` (parallel) in, at the server's version."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from catalog.backup.marker import MARKER_TABLE, BackupError, RestoreIncompleteError
from catalog.backup.sqlite import CATALOG_TABLES
from catalog.progress import NoProgress, ProgressSink

MAGIC = b"PGDMP"
CONNECT_TIMEOUT = 10
# One TOC line of `pg_restore --list`: "218; 1259 16404 TABLE public items postgres".
_TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ")
_TOC_ENTRY = re.compile(r"^\d+; ")
_DUMPING = re.compile(r"dumping contents of table")
_RESTORING = re.compile(r"(creating |processing data for table|finished item)")


def _conninfo(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and an environment that carries it."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _connect(url: URL, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    conninfo, env = _conninfo(url)
    return psycopg.connect(
        conninfo,
        password=env.get("PGPASSWORD"),
        autocommit=autocommit,
        connect_timeout=CONNECT_TIMEOUT,
    )


def _database_missing(error: psycopg.OperationalError) -> bool:
    return "does not exist" in str(error)


def server_major(url: URL) -> int:
    """The server's major version (15): its client tools are the ones to run."""
    try:
        connection = _connect(url)
    except psycopg.OperationalError as error:
        if not _database_missing(error):
            raise BackupError(f"cannot connect to the database: {_first_line(error)}") from None
        connection = _connect(url.set(database="postgres"))
    with connection:
        number = int(str(connection.execute("SHOW server_version_num").fetchone()[0]))  # type: ignore[index]
    return number // 10000


def client_binary(name: str, major: int) -> str:
    """The `name` tool of PostgreSQL `major` (Debian's versioned directory first)."""
    versioned = Path(os.environ.get("PG_BIN", f"/usr/lib/postgresql/{major}/bin")) / name
    if versioned.is_file():
        return str(versioned)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install the PostgreSQL {major} client tools")
    return found


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _run_reporting(
    argv: list[str], env: dict[str, str], on_line: Callable[[str], None]
) -> tuple[int, list[str]]:
    """Run `argv`, passing each stderr line to `on_line`; its exit code and the error lines."""
    errors: list[str] = []
    with subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            on_line(line)
            if "error" in line.lower() or "fatal" in line.lower() or "could not" in line:
                errors.append(line.strip())
        code = process.wait()
    return code, errors


def _user_tables(connection: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    rows = connection.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relkind IN ('r', 'p', 'v', 'm')"
    ).fetchall()
    return [str(name) for (name,) in rows]


def backup(url: URL, partial: Path, progress: ProgressSink | None = None) -> None:
    """`pg_dump -Fc` of the database at `url` into `partial` (one snapshot, taken at its start)."""
    progress = progress or NoProgress()
    try:
        with _connect(url) as connection:
            tables = _user_tables(connection)
            number = int(str(connection.execute("SHOW server_version_num").fetchone()[0]))  # type: ignore[index]
    except psycopg.OperationalError as error:
        raise BackupError(f"cannot connect to the database: {_first_line(error)}") from None
    if MARKER_TABLE in tables:
        raise RestoreIncompleteError(f"database {url.database}")
    conninfo, env = _conninfo(url)
    progress.start("backup", len(tables))

    def on_line(line: str) -> None:
        if _DUMPING.search(line):
            progress.advance("backup", 1)

    argv = [
        client_binary("pg_dump", number // 10000),
        "--format=custom",
        "--verbose",
        f"--file={partial}",
        f"--dbname={conninfo}",
    ]
    code, errors = _run_reporting(argv, env, on_line)
    if code != 0:
        raise BackupError(f"pg_dump failed: {'; '.join(errors[-3:]) or f'exit code {code}'}")
    verify(partial, number // 10000, check_catalog=False)


def verify(path: Path, major: int, *, check_catalog: bool = True) -> int:
    """Raise BackupError unless `path` is a complete pg_dump of a Catalog database.

    Reads the whole file (a restore to /dev/null), not only its table of contents:
    a file cut short after its header still lists fine. Returns the number of entries.
    """
    try:
        with path.open("rb") as file:
            head = file.read(16)
    except OSError as error:
        raise BackupError(f"cannot read {path}: {error.strerror}") from None
    if head.startswith(b"SQLite format 3"):
        raise BackupError(f"{path} is a SQLite backup; the target database is PostgreSQL")
    if not head.startswith(MAGIC):
        raise BackupError(f"{path} is not a Catalog backup (not a pg_dump custom-format file)")
    restore_tool = client_binary("pg_restore", major)
    listed = subprocess.run(
        [restore_tool, "--list", str(path)], capture_output=True, text=True, errors="replace"
    )
    if listed.returncode != 0:
        raise _damaged(path, listed.stderr)
    tables = set()
    entries = 0
    for line in listed.stdout.splitlines():
        if _TOC_ENTRY.match(line):
            entries += 1
        match = _TOC_TABLE.match(line)
        if match and match.group(1) == "public":
            tables.add(match.group(2))
    if MARKER_TABLE in tables:
        raise BackupError(f"{path} is a copy of an unfinished restore; it cannot be restored")
    missing = CATALOG_TABLES - tables
    if check_catalog and missing:
        raise BackupError(
            f"{path} is not a Catalog backup: it has no {', '.join(sorted(missing))} table"
        )
    read_all = subprocess.run(
        [restore_tool, "--file=/dev/null", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    if read_all.returncode != 0:
        raise _damaged(path, read_all.stderr)
    return entries


def _damaged(path: Path, stderr: str) -> BackupError:
    detail = stderr.strip().splitlines()[0] if stderr.strip() else "unreadable"
    return BackupError(f"{path} is damaged (truncated or corrupt): {detail}")


def _create_database(url: URL) -> None:
    with _connect(url.set(database="postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(url.database))))


def table_count(url: URL) -> int | None:
    """How many tables the target has (excluding the mark); None if the database is missing."""
    try:
        with _connect(url) as connection:
            return len(set(_user_tables(connection)) - {MARKER_TABLE})
    except psycopg.OperationalError as error:
        if _database_missing(error):
            return None
        raise BackupError(f"cannot connect to the target: {_first_line(error)}") from None


def restore(
    source: Path,
    url: URL,
    *,
    major: int,
    entries: int,
    jobs: int,
    progress: ProgressSink | None = None,
) -> None:
    """Restore the verified `source` into the database at `url`, replacing its schema.

    One transaction empties the target's public schema and puts the mark in; pg_restore
    then loads in parallel (`jobs`), and only its success removes the mark.
    """
    progress = progress or NoProgress()
    if table_count(url) is None:
        _create_database(url)
    with _connect(url) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")
        connection.execute("ALTER SCHEMA public OWNER TO pg_database_owner")
        connection.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
        connection.execute(
            sql.SQL("CREATE TABLE public.{} (started timestamptz NOT NULL DEFAULT now())").format(
                sql.Identifier(MARKER_TABLE)
            )
        )
    conninfo, env = _conninfo(url)
    progress.start("restore", entries)

    def on_line(line: str) -> None:
        if _RESTORING.search(line):
            progress.advance("restore", 1)

    argv = [
        client_binary("pg_restore", major),
        "--verbose",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        f"--jobs={jobs}",
        f"--dbname={conninfo}",
        str(source),
    ]
    code, errors = _run_reporting(argv, env, on_line)
    if code != 0:
        raise BackupError(
            f"pg_restore failed: {'; '.join(errors[-3:]) or f'exit code {code}'}. "
            f"The database is marked unusable ({MARKER_TABLE}); restore again with --force"
        )
    with _connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP TABLE public.{}").format(sql.Identifier(MARKER_TABLE)))
        connection.execute("ANALYZE")  # pg_restore leaves the planner without statistics
