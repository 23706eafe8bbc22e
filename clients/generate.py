"""Generate the typed API clients from the OpenAPI document, or check that they are current.

    python -m clients.generate           # rewrite clients/ (what `make clients` runs)
    python -m clients.generate --check   # exit 1, naming what differs, if they are stale

The document is the one `catalog openapi` prints with every setting at its default: the
command runs in an empty directory with an environment holding only a signing key, so
neither a `.env` file nor the caller's variables can change the published contract.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CLIENTS = Path(__file__).resolve().parent
DOCUMENT = CLIENTS / "openapi.json"
PYTHON_PACKAGE = CLIENTS / "python" / "catalog_client"
TYPESCRIPT = CLIENTS / "typescript"
TYPESCRIPT_OUTPUT = TYPESCRIPT / "src" / "client"
BIN = Path(sys.executable).parent
# openapi-python-client lives in a venv of its own inside the project's (`make clients-tools`).
TOOLS_BIN = Path(sys.prefix) / "tools" / "bin"
# Not a secret: it signs nothing outside this one `catalog openapi` run.
_DOCUMENT_ENV = {"SECRET_KEY": "openapi-document-" + "0" * 32}


class GenerationError(RuntimeError):
    """A generator is missing or failed."""


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as error:
        raise GenerationError(f"{argv[0]} is not installed ({error})") from error
    if done.returncode != 0:
        raise GenerationError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def write_document(target: Path) -> None:
    """Write the default service's OpenAPI document to `target`."""
    with tempfile.TemporaryDirectory() as empty:
        env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": empty}
        _run(
            [str(BIN / "catalog"), "openapi", "--out", str(target)],
            Path(empty),
            env | _DOCUMENT_ENV,
        )


def python_tools() -> Path:
    """The installed `openapi-python-client` (requirements/clients.lock)."""
    tool = TOOLS_BIN / "openapi-python-client"
    if not tool.exists():
        raise GenerationError(f"{tool} is missing: run `make clients-tools`")
    return tool


def write_python(document: Path, package: Path) -> None:
    """Generate the Python client package (openapi-python-client) at `package`."""
    # Its post-hooks run the ruff pinned beside it, so the output is the same everywhere.
    env = os.environ | {"PATH": f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    _run(
        [
            str(python_tools()),
            "generate",
            "--path",
            str(document),
            "--config",
            str(CLIENTS / "python" / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(package),
            "--overwrite",
        ],
        CLIENTS,
        env,
    )


def typescript_tools() -> Path:
    """The installed `openapi-ts` (`npm ci` in clients/typescript installs it)."""
    tool = TYPESCRIPT / "node_modules" / ".bin" / "openapi-ts"
    if not tool.exists():
        raise GenerationError(f"{tool} is missing: run `make clients-tools`")
    return tool


def write_typescript(document: Path, output: Path) -> None:
    """Generate the TypeScript client (@hey-api/openapi-ts, fetch client) into `output`."""
    _run(
        [str(typescript_tools()), "--silent", "-i", str(document), "-o", str(output)],
        TYPESCRIPT,
    )


def generate() -> None:
    """Rewrite the document and both clients in place."""
    write_document(DOCUMENT)
    write_python(DOCUMENT, PYTHON_PACKAGE)
    write_typescript(DOCUMENT, TYPESCRIPT_OUTPUT)


def _differences(expected: Path, actual: Path) -> list[str]:
    """Paths (relative to `expected`) that are missing, extra or different in `actual`."""
    if expected.is_file() or actual.is_file():
        same = expected.is_file() and actual.is_file() and filecmp.cmp(expected, actual, False)
        return [] if same else [expected.name]
    comparison = filecmp.dircmp(expected, actual, ignore=["__pycache__"])
    found = [*comparison.left_only, *comparison.right_only, *comparison.diff_files]
    found += comparison.funny_files
    for name in comparison.common_dirs:
        found += [f"{name}/{path}" for path in _differences(expected / name, actual / name)]
    return sorted(found)


def stale() -> list[str]:
    """What `generate()` would change in the committed clients (empty: they are current)."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        document = root / "openapi.json"
        write_document(document)
        write_python(document, root / "catalog_client")
        write_typescript(document, root / "ts")
        pairs = [
            (DOCUMENT, document),
            (PYTHON_PACKAGE, root / "catalog_client"),
            (TYPESCRIPT_OUTPUT, root / "ts"),
        ]
        return [
            f"{committed.relative_to(CLIENTS.parent)}: {path}"
            for committed, fresh in pairs
            for path in _differences(committed, fresh)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale clients")
    args = parser.parse_args()
    try:
        if not args.check:
            generate()
            return
        changed = stale()
    except GenerationError as error:
        sys.exit(f"error: {error}")
    if changed:
        print("The committed clients no longer match the API; run `make clients`:", file=sys.stderr)
        print("\n".join(f"  {line}" for line in changed), file=sys.stderr)
        sys.exit(1)
    print("clients are current")


if __name__ == "__main__":
    main()
