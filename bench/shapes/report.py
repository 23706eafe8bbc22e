"""The shape matrix's table: per shape its median and p90, the worst shape, the wrong answers."""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.shapes.check import Rules
from bench.shapes.timing import ShapeRun


@dataclass
class Result:
    backend: str
    items: int
    rounds: int
    rules: Rules
    runs: list[ShapeRun]
    goal_ms: float
    load: tuple[float, float]  # 1-minute load average before and after the timed rounds

    @property
    def wrong(self) -> list[ShapeRun]:
        return [run for run in self.runs if run.problems]

    @property
    def worst(self) -> ShapeRun | None:
        timed = [run for run in self.runs if run.samples and not math.isnan(run.median)]
        return max(timed, key=lambda run: run.median) if timed else None


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def _rows(run: ShapeRun) -> str:
    """Items on the first page, and the matches SQL counts where the shape asks for a count."""
    if run.rows is None:
        return "-"
    return f"{run.rows}" if run.total is None else f"{run.rows} of {run.total:,}"


def _answer(run: ShapeRun) -> str:
    if run.problems:
        # A 503 (statement or request timeout) is not the right answer either, but says why.
        unavailable = any("503" in problem for problem in run.problems)
        return "503" if unavailable else "WRONG"
    if run.refused:
        return f"{run.status} refused"
    return str(run.status)


def render(result: Result, *, markdown: bool = False) -> str:
    """The table and its summary, as plain text or Markdown."""
    header = ("shape", "requests", "answer", "rows", "median ms", "p90 ms", "goal", "note")
    rows = [
        (
            run.shape.label,
            str(len(run.urls)),
            _answer(run),
            _rows(run),
            _ms(run.median),
            _ms(run.p90),
            "" if math.isnan(run.median) else ("ok" if run.median <= result.goal_ms else "SLOW"),
            run.shape.note,
        )
        for run in result.runs
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|--:|---|--:|--:|--:|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        ]
    worst = result.worst
    slow = [run for run in result.runs if run.samples and run.median > result.goal_ms]
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary = [
        "",
        f"{result.backend}, {result.items:,} items, {result.rounds} timed round(s),"
        f" one request at a time; {now}; Python {platform.python_version()};"
        f" load average {result.load[0]:.1f} before, {result.load[1]:.1f} after",
        f"rules of the build: {result.rules.describe()}",
        "time per shape and round: its slowest request (multi-page shapes follow Link rel=next);"
        " 'refused': the refusal the build documents for that shape, checked as such",
    ]
    if worst is not None:
        summary.append(
            f"worst shape: {worst.shape.label} (median {_ms(worst.median)} ms,"
            f" p90 {_ms(worst.p90)} ms); goal <= {result.goal_ms:g} ms:"
            f" {len(slow)} of {len(result.runs)} shapes over it"
        )
    wrong = result.wrong
    summary.append(
        f"answers: {len(result.runs) - len(wrong)} of {len(result.runs)} right"
        + ("" if not wrong else "; WRONG:")
    )
    for run in wrong:
        problems = list(dict.fromkeys(run.problems))
        summary.append(f"  {run.shape.label} ({run.urls[0] if run.urls else run.shape.url}):")
        summary += [f"    {problem}" for problem in problems[:5]]
    return "\n".join(lines + summary)


def as_json(result: Result) -> dict[str, Any]:
    """The run as data (`--json`), for comparing sizes and builds (`bench.shapes.compare`)."""
    return {
        "backend": result.backend,
        "items": result.items,
        "rounds": result.rounds,
        "load": list(result.load),
        "shapes": {
            run.shape.label: {
                "url": run.shape.url,
                "answer": _answer(run),
                "rows": run.rows,
                "median_ms": None if math.isnan(run.median) else round(run.median, 2),
                "p90_ms": None if math.isnan(run.p90) else round(run.p90, 2),
                "problems": list(dict.fromkeys(run.problems)),
            }
            for run in result.runs
        },
    }
