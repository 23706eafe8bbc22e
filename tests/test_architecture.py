"""The layering the code promises (docs/architecture.md), checked on the code itself.

Data flows one way: route -> service -> unit of work -> database. Backend differences
live in `db/` (and in migrations, whose DDL legitimately differs per database).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from catalog.api.app import create_app
from catalog.api.deps import get_current_user, get_reading_unit_of_work, get_unit_of_work
from catalog.config import Settings
from tests.conftest import make_settings

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "catalog"
BACKEND_NAMES = {"postgresql", "sqlite"}


def modules(*parts: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.joinpath(*parts).rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def backend_tests(tree: ast.Module) -> list[str]:
    """Comparisons with a backend name, and reads of `<x>.dialect.name`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in BACKEND_NAMES for o in operands):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "name"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "dialect"
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_backend_test_outside_db_and_migrations() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path, tree in modules()
        if path.relative_to(PACKAGE).parts[0] not in ("db", "migrations")
        and (found := backend_tests(tree))
    }
    assert offenders == {}


def test_the_check_itself_sees_a_backend_test() -> None:
    tree = ast.parse('if engine.dialect.name == "sqlite":\n    pass\n')
    assert len(backend_tests(tree)) == 2


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("services", ("fastapi", "starlette")),  # no HTTP in data access
        ("api", ("sqlalchemy",)),  # no SQL in routes (error classes excepted, below)
        ("db", ("fastapi", "starlette", "catalog.services", "catalog.api")),
    ],
)
def test_layers_import_only_downwards(layer: str, forbidden: tuple[str, ...]) -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name
            for name in imported(tree)
            if name.startswith(forbidden) and name != "sqlalchemy.exc"
        )
        for path, tree in modules(layer)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def _dependencies(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependencies(sub)


ROUTES = "catalog.api.routes."


def test_every_route_reaches_the_database_through_one_unit_of_work(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'unused.db'}"))
    routes = [  # the API's own (not the docs pages)
        route
        for route in app.routes
        if isinstance(route, APIRoute) and route.endpoint.__module__.startswith(ROUTES)
    ]
    assert routes
    for route in routes:
        calls = list(_dependencies(route.dependant))
        # Nothing else may hand a route an engine, a session or the Database itself.
        names = {getattr(call, "__name__", "") for call in calls}
        assert not names & {"get_database", "get_async_db", "get_read_db"}, route.path
        if route.path in ("/health",):
            continue
        # A route that may write commits through the writing unit of work; one that only
        # reads takes the reading one (which refuses writes), or reads no more than the
        # token's user (`get_current_user` reads through a reading one of its own), and
        # never the writing one.
        if (route.methods or set()) <= {"GET", "HEAD"}:
            assert {get_reading_unit_of_work, get_current_user} & set(calls), route.path
            assert get_unit_of_work not in calls, route.path
        else:
            assert get_unit_of_work in calls, route.path


# Writing with the ORM or SQL: what the admin must leave to the services.
ORM_WRITES = {"add", "add_all", "commit", "flush", "merge", "delete", "execute", "write"}
SQL_WRITES = {"insert", "update", "delete", "text", "upsert"}


def admin_writes(tree: ast.Module) -> list[str]:
    """Calls of session write methods, and imports of SQL write constructs."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ORM_WRITES
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("sqlalchemy", "catalog.db")
        ):
            found += [f"line {node.lineno}: {a.name}" for a in node.names if a.name in SQL_WRITES]
    return found


def test_the_admin_writes_only_through_the_services() -> None:
    """sqladmin reads with sessions to render its pages; every write is a service call."""
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path, tree in modules("admin")
        if (found := admin_writes(tree))
    }
    assert offenders == {}


def test_the_admin_check_itself_sees_a_write() -> None:
    tree = ast.parse(
        "from sqlalchemy import update\n"
        "async def f(session):\n    session.add(x)\n    await session.commit()\n"
    )
    assert len(admin_writes(tree)) == 3


# --- every documented setting is tested ------------------------------------------------------

ROOT = PACKAGE.parents[1]
TESTS = ROOT / "tests"
# Files that set settings without exercising them: this check, the environment test (which
# sets variables to prove the tests ignore them) and the settings' own tests, which mostly
# prove that a value is read or refused, not that the service acts on it.
NOT_EXERCISING = {Path(__file__).resolve(), TESTS / "test_environment.py", TESTS / "test_config.py"}
# ... except for a setting whose whole effect is in config.py itself.
EXERCISED_IN_CONFIG_TESTS = {"SECRET_KEY_FILE"}  # where the development key is kept
# `NAME=value` in a string: a command line, a `.env` file, an environment listing.
ENV_ASSIGNMENT = re.compile(r"\b([A-Z][A-Z0-9_]*)=([^\s'\"&;]*)")
UNKNOWN = object()  # a value that is not a literal (a variable, a call): counts as set


def documented_settings(readme: str) -> list[str]:
    """The variables of the README's settings table (a row may name several: `A` / `B`)."""
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        names += re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell)
    return names


def _literal(node: ast.expr | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else UNKNOWN
    except (ValueError, TypeError, SyntaxError):
        return UNKNOWN


def _not_read(tree: ast.Module) -> set[int]:
    """Nodes that only check or describe (asserts, docstrings), by id: they set nothing."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            ids.update(id(inner) for inner in ast.walk(node))
        elif isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def given_values(source: str) -> Iterator[tuple[str, object]]:
    """(NAME, value) wherever test code gives a setting a value: a keyword argument
    (`make_settings(url, db_pool_size=3)`), a dict entry (`{"METRICS": "on"}`, overrides
    for `model_copy`), `env["NAME"] = ...`, `setenv("NAME", ...)`, or `NAME=...` in a string.
    Comments, docstrings and asserts are not read."""
    tree = ast.parse(source)
    skipped = _not_read(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.keyword) and node.arg:
            yield node.arg.upper(), _literal(node.value)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield key.value.upper(), _literal(value)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                    yield str(target.slice.value).upper(), _literal(node.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("setenv", "setdefault")
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value).upper(), _literal(node.args[1])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for name, value in ENV_ASSIGNMENT.findall(node.value):
                # `f"METRICS={port}"`: the value follows in a formatted part.
                yield name, value if value else UNKNOWN


def _normal(value: object) -> str:
    """A value as the environment would spell it, numbers compared as numbers."""
    if value is None or value == () or value == "":
        return ""
    text = str(value).strip().lower()
    try:
        return repr(float(text))
    except ValueError:
        return text


def set_settings(source: str) -> set[str]:
    """The settings (upper-case names) `source` gives a value other than their default."""
    defaults = {
        name.upper(): field.default
        for name, field in Settings.model_fields.items()
        if field.default_factory is None
    }
    return {
        name
        for name, value in given_values(source)
        if value is UNKNOWN or name not in defaults or _normal(value) != _normal(defaults[name])
    }


def test_every_documented_setting_is_set_by_a_test() -> None:
    """Each setting of the README's table is given a non-default value by some test: the
    precondition of a test that fails when the setting is ignored (which this check cannot
    see; a new setting's test must assert its effect)."""
    readme = (ROOT / "README.md").read_text()
    settings = documented_settings(readme)
    assert len(settings) >= 40, settings  # the table was found and read
    found: set[str] = set()
    for path in TESTS.rglob("*.py"):
        if path.resolve() not in NOT_EXERCISING:
            found |= set_settings(path.read_text())
    found |= set_settings((TESTS / "test_config.py").read_text()) & EXERCISED_IN_CONFIG_TESTS
    untested = [name for name in settings if name not in found]
    assert not untested, (
        f"settings documented in README.md that no test under tests/ sets to a non-default "
        f"value: {', '.join(untested)} (add a test that fails when the setting is ignored)"
    )


def test_the_settings_check_itself_reads_the_table() -> None:
    table = (
        "## Configuration\n\n| variable | default | meaning |\n|---|---|---|\n"
        "| `DB_POOL_SIZE` / `DB_MAX_OVERFLOW` | `20` | pool, see `NOT_A_SETTING` |\n"
        "| `TRUSTED_PROXIES` | unset | ... |\n\n## Operating\n| `LATER` | x | y |\n"
    )
    assert documented_settings(table) == ["DB_POOL_SIZE", "DB_MAX_OVERFLOW", "TRUSTED_PROXIES"]


SETTING_SOURCE = '''
"""Module docstring: MAX_OFFSET=5."""
def test_x(monkeypatch, url, port, origin):
    """Docstring: LOG_FORMAT=json."""
    make_settings(url, db_pool_size=3)
    env = {"TRACING": "true", "REQUEST_TIMEOUT": "10"}  # the latter is the default
    env["CORS_ORIGINS"] = origin
    monkeypatch.setenv("METRICS", "on")
    run(f"ADMIN=on PUBLIC_BASE_URL={port} catalog serve")
    settings.model_copy(update={"login_lockout_max_seconds": 8})
    # LOG_LEVEL=DEBUG in a comment; DB_ECHO named in a call but not set:
    print("DB_ECHO", settings.db_echo, settings.max_body_bytes)
    load_settings(login_failure_window_seconds=900)  # the default
    assert load_settings(max_query_params=11) == {"access_log": False}
'''


def test_the_settings_check_itself_counts_only_non_default_values_set_in_code() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert set_settings(SETTING_SOURCE) & fields == {
        "DB_POOL_SIZE",
        "TRACING",
        "CORS_ORIGINS",
        "METRICS",
        "ADMIN",
        "PUBLIC_BASE_URL",
        "LOGIN_LOCKOUT_MAX_SECONDS",
    }


MAX_MODULE_LINES = 400


def test_every_module_stays_small() -> None:
    """One job per module, and a newcomer reads one at a sitting: at most 400 lines."""
    too_long = {
        str(path.relative_to(PACKAGE)): length
        for path in sorted(PACKAGE.rglob("*.py"))
        if (length := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


_IMPORT_EACH = """
import importlib, json, sys
failures = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "catalog" or m.startswith("catalog.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failures[name] = f"{type(error).__name__}: {error}"
print(json.dumps(failures))
"""


def package_modules() -> list[str]:
    """Every importable module of the package (Alembic's env and revisions run only
    under Alembic)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if "versions" in parts or (parts[-1] == "env" and "migrations" in parts):
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_first() -> None:
    """Any module can be the first one imported: no import cycle that only works when
    another module happened to be imported before (a tool importing `api.listing` alone
    once got an ImportError, and silently fell back to wrong rules)."""
    names = package_modules()
    assert "catalog.api.listing" in names
    assert len(names) > 50
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, *names],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(result.stdout) == {}


def test_an_api_worker_does_not_load_the_cli_driver() -> None:
    """psycopg serves the CLI, migrations and backups; an API worker that imported it
    would carry ~8 MiB it never uses (the restore-marker check imports `catalog.backup`)."""
    script = (
        "import sys\n"
        "from catalog.api.app import create_app\n"
        "from catalog.config import load_settings\n"
        "url = 'postgresql://nobody@127.0.0.1:1/none'\n"
        "create_app(load_settings(database_url=url, secret_key='k' * 40, _env_file=None))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'psycopg'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
