"""The shape matrix's checker (bench/shapes), run on a tiny dataset on both databases.

The benchmark's verdicts are only as good as its oracle: every shape's answer from the
served service must agree with the plain SQL the tool computes, and a wrong answer (here a
wrong NULL order, a missing refusal) must be reported as wrong.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.shapes import cli, explain, oracle
from bench.shapes.report import Result
from sqlalchemy import create_engine, text

from tests.conftest import BACKENDS, throwaway_database

ITEMS, USERS = "2000", "40"


@pytest.fixture(scope="module", params=BACKENDS)
def dataset_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A tiny benchmark dataset, one item in five updated (so `updated_at` has values)."""
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"shapes-{backend}")
    with throwaway_database(backend, tmp) as url:
        args = _args(url)
        prepared = cli._prepare(args)
        engine = create_engine(cli._oracle_url(prepared))
        with engine.begin() as conn:
            conn.execute(text("UPDATE items SET updated_at = created_at WHERE id % 5 = 0"))
        engine.dispose()
        yield prepared


def _args(url: str, *extra: str) -> argparse.Namespace:
    where = (
        ["--backend", "sqlite", "--sqlite-path", str(Path(url.removeprefix("sqlite:///")))]
        if url.startswith("sqlite")
        else ["--database-url", url]
    )
    return cli.parse_args([*where, "--items", ITEMS, "--users", USERS, "--rounds", "1", *extra])


def _measure(url: str, *extra: str) -> Result:
    return cli.measure(_args(url, *extra), url)


def test_every_shape_answers_as_plain_sql_does(dataset_url: str) -> None:
    result = _measure(dataset_url)
    assert [(run.shape.label, run.problems) for run in result.wrong] == []
    assert len(result.runs) > 60
    by_label = {run.shape.label: run for run in result.runs}
    # Not vacuous: the filters match rows, multi-page shapes really follow next links.
    for label in ("tag=common", "q=3ch", "filtered", "owner", "date wide sort=price count"):
        assert by_label[label].rows, label
    assert len(by_label["pages 1-3"].urls) == 3
    assert "cursor=" in by_label["pages 1-3"].urls[2]
    assert by_label["tags/unknown"].status == 404
    assert all(len(run.samples) == 1 for run in result.runs)


def test_a_wrong_order_is_reported(dataset_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The oracle with NULLs last in descending order too: not what the API documents.
    monkeypatch.setattr(
        oracle,
        "order",
        lambda request: ", ".join(
            f"{name} {'DESC' if desc else 'ASC'} NULLS LAST" for name, desc in request.sort
        ),
    )
    result = _measure(dataset_url, "--only", "sort=-updated_at")
    wrong = {run.shape.label: run.problems for run in result.wrong}
    assert "ids differ at position 0" in wrong["sort=-updated_at"][0]
    assert "ids differ at position 0" in wrong["sort=-updated_at,name pages 1-3"][0]


def test_a_missing_documented_refusal_is_reported(dataset_url: str) -> None:
    # As if the build documented a maximum offset of 100 and a minimum q word of 5
    # characters (stricter than any build has: the served one answers these shapes).
    result = _measure(dataset_url, "--only", "skip=1000", "--max-offset", "100")
    assert [run.problems for run in result.runs] == [["skip > 100: expected 400, got 200"]]
    result = _measure(dataset_url, "--only", "q=3ch-none", "--min-q-length", "5")
    assert [run.problems for run in result.runs] == [
        ["q without 5 letters/digits in a row: expected 422, got 200"]
    ]


def _explained(url: str, label: str, capsys: pytest.CaptureFixture[str]) -> str:
    """What `python -m bench.shapes.explain --only LABEL` prints for the dataset at `url`."""
    assert explain.main(["--only", label, "--database-url", url]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("dataset_url", ["postgresql"], indirect=True)
def test_explain_prints_the_plan_of_each_statement_a_shape_runs(
    dataset_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = _explained(dataset_url, "sort=updated_at,-price", capsys)
    assert "=== sort=updated_at,-price: GET /items?sort=updated_at%2C-price" in printed
    assert "-> 200, 1 statement(s)" in printed
    # The page statement, with its arguments, then what EXPLAIN ANALYZE made of it.
    assert "ORDER BY" in printed
    assert "--- arguments: (51, 0)" in printed
    assert printed.count("Execution Time") == 1


@pytest.mark.parametrize("dataset_url", ["postgresql"], indirect=True)
def test_explain_sees_a_count_planned_for_its_values(
    dataset_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The count runs through Connection.prepare (a custom plan), not Connection.fetch.
    printed = _explained(dataset_url, "filtered count", capsys)
    # The count and the page: the warm-up request read the tag's id, now remembered.
    assert "-> 200, 2 statement(s)" in printed
    assert "SELECT count(*) AS total" in printed
    assert printed.count("Execution Time") == 2
