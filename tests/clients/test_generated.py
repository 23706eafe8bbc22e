"""The committed clients are what the API's OpenAPI document generates today, and the
TypeScript one type-checks (tsc, strict) and drives a whole flow against a live service."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from clients.generate import TYPESCRIPT, GenerationError, python_tools, stale, typescript_tools

from tests.conftest import IN_CI

NODE = shutil.which("node")


def _tools_or_skip() -> None:
    try:
        python_tools()
        typescript_tools()
    except GenerationError as error:
        if IN_CI:
            pytest.fail(f"CI requires the client generators: {error}")
        pytest.skip(str(error))
    if NODE is None:
        reason = "node is not installed (Node.js >= 20.19 runs the TypeScript client)"
        if IN_CI:
            pytest.fail(f"CI requires {reason}")
        pytest.skip(reason)


def test_committed_clients_match_the_api() -> None:
    _tools_or_skip()
    changed = stale()
    assert not changed, "run `make clients` and commit the result:\n" + "\n".join(changed)


def test_typescript_client_flow(served: str, tmp_path: Path) -> None:
    _tools_or_skip()
    assert NODE is not None
    tsc = TYPESCRIPT / "node_modules" / ".bin" / "tsc"
    built = subprocess.run(
        [str(tsc), "--outDir", str(tmp_path / "dist")],
        cwd=TYPESCRIPT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, f"tsc:\n{built.stdout}{built.stderr}"
    # ES modules: node resolves the compiled imports with the package's "type": "module".
    shutil.copy(TYPESCRIPT / "package.json", tmp_path / "dist" / "package.json")
    ran = subprocess.run(
        [NODE, str(tmp_path / "dist" / "flow" / "flow.js")],
        env=os.environ | {"BASE_URL": served},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, f"flow:\n{ran.stdout}{ran.stderr}"
    assert "typescript client flow: ok" in ran.stdout
