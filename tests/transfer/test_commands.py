"""`catalog export` and `catalog import` as commands: files, stdin/stdout, errors, progress."""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine

from catalog.cli import transfer as transfer_cli
from catalog.transfer import Format
from tests.conftest import throwaway_database
from tests.test_cli import assert_one_line_error, invoke
from tests.transfer.sample import (
    EngineFactory,
    export_bytes,
    row_counts,
    snapshot,
    url_of,
)
from tests.transfer.test_refused import _edit, _set

# --- the commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", list(Format))
def test_cli_export_then_import_from_a_file_and_from_stdin(
    source: Engine, new_engine: EngineFactory, tmp_path: Path, file_format: Format
) -> None:
    path = tmp_path / f"catalog.{file_format}"
    result = invoke(url_of(source), "export", "--format", file_format, "--output", str(path))
    assert result.exit_code == 0, result.output
    # No progress bar off a terminal: the summary only.
    summary = rf"Exported 3 users, 5 tags and 5 items to {path} \({file_format}\) in \d+\.\d s\n"
    assert re.fullmatch(summary, result.stderr)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds password hashes
    assert path.read_bytes() == export_bytes(source, file_format)
    assert [name for name in os.listdir(tmp_path) if "catalog." in name] == [path.name]

    target = new_engine()
    first = invoke(url_of(target), "import", str(path))
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    again = invoke(url_of(target), "import", "-", input=path.read_bytes())  # type: ignore[arg-type]
    assert again.exit_code == 0, again.output
    assert "│ items     │ 5    │ 0 " in again.stdout
    assert snapshot(target) == snapshot(source)

    to_stdout = invoke(url_of(target), "export", "-f", file_format)
    assert to_stdout.stdout_bytes == path.read_bytes()


def test_cli_refused_import_is_one_line_exit_1(
    source: Engine, new_engine: EngineFactory, tmp_path: Path
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_bytes(_edit(export_bytes(source), 11, _set(price="-1")))
    target = new_engine()
    result = invoke(url_of(target), "import", str(path))
    assert_one_line_error(result, 1, "error: line 11: price: Input should be greater than or")
    assert result.stderr.strip().endswith("(nothing was imported)")
    assert set(row_counts(target).values()) == {0}

    missing = invoke(url_of(target), "import", str(tmp_path / "nope.jsonl"))
    assert_one_line_error(missing, 1, "cannot read", "No such file or directory")


def test_cli_failed_export_leaves_no_file(backend: str, tmp_path: Path) -> None:
    with throwaway_database(backend, tmp_path) as unmigrated:
        result = invoke(unmigrated, "export", "--output", str(tmp_path / "out.jsonl"))
    assert_one_line_error(result, 1, "database error")
    assert not [name for name in os.listdir(tmp_path) if name.startswith((".out", "out"))]


def test_cli_shows_a_progress_bar_on_a_terminal(
    source: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    monkeypatch.setattr(transfer_cli, "err", terminal)
    result = invoke(url_of(source), "export", "--output", "out.jsonl")
    assert result.exit_code == 0, result.output
    shown = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "export" in shown
    assert "13/13" in shown  # 3 users + 5 tags + 5 items
    assert "\x1b[" in shown  # drawn with terminal control codes
