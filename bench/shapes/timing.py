"""Send the shapes one request at a time: first a checked pass, then N timed rounds.

The checked pass sends each shape once (following `Link: rel="next"` for multi-page
shapes), compares every page with plain SQL and records the URLs of its requests. The timed
rounds then send those URLs in round-robin order (every shape once per round, so a change in
the machine's load touches every shape alike) and keep, per round, the time of the shape's
slowest request, as a client sees it (connect kept alive; HTTP, the service and the
database included). Every timed answer must equal the checked one.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Connection

from bench.scenarios import next_link
from bench.shapes import check, oracle
from bench.shapes.matrix import Shape


@dataclass
class ShapeRun:
    """One shape: what was checked, the URLs to time, and the timings (ms per round)."""

    shape: Shape
    urls: list[str] = field(default_factory=list)
    answers: list[tuple[int, bytes]] = field(default_factory=list)  # (status, body) per URL
    status: int = 0
    refused: str = ""  # the documented refusal this shape was answered with, if any
    rows: int | None = None  # items on the first page (None: refused or not found)
    total: int | None = None  # what plain SQL counts, for shapes with count=true
    problems: list[str] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def p90(self) -> float:
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]


def _headers(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


def probe(client: httpx.Client, conn: Connection, shape: Shape, rules: check.Rules) -> ShapeRun:
    """Send the shape once, page by page, and check every answer against plain SQL."""
    run = ShapeRun(shape)
    request = oracle.parse(shape.url)
    url: str | None = shape.url
    for page in range(shape.pages):
        if url is None:  # the last page came early (check_page compared the link with SQL)
            break
        try:
            response = client.get(url)
        except httpx.HTTPError as error:
            run.problems.append(f"page {page + 1}: {type(error).__name__}: {error}")
            break
        run.urls.append(url)
        run.answers.append((response.status_code, response.content))
        run.status = run.status or response.status_code
        refusal = check.refusal(request, rules) if page == 0 else None
        if refusal is not None:
            run.refused = refusal.rule
            run.problems += check.check_refusal(response.status_code, response.content, refusal)
            break
        if not oracle.scope_exists(conn, request):
            if response.status_code != 404:
                run.problems.append(f"unknown user/tag: expected 404, got {response.status_code}")
            break
        expected = oracle.expected_page(conn, request, page)
        if page == 0:
            run.rows, run.total = len(expected.ids), expected.total
        link = next_link(response)
        problems = check.check_page(
            response.status_code,
            _headers(response),
            response.content,
            expected,
            rules,
            link is not None,
        )
        run.problems += [f"page {page + 1}: {p}" for p in problems] if shape.pages > 1 else problems
        if problems:
            break
        url = link
    return run


def _same_answer(first: tuple[int, bytes], response: httpx.Response) -> bool:
    status, body = first
    return response.status_code == status and response.content == body


def time_rounds(client: httpx.Client, runs: list[ShapeRun], rounds: int) -> None:
    """`rounds` timed passes over every checked shape (round-robin)."""
    for _ in range(rounds):
        for run in runs:
            if not run.urls:
                continue
            slowest = 0.0
            for url, first in zip(run.urls, run.answers, strict=True):
                started = time.perf_counter()
                try:
                    response = client.get(url)
                except httpx.HTTPError as error:
                    run.problems.append(f"timed request failed: {type(error).__name__}")
                    slowest = float("nan")
                    break
                elapsed = (time.perf_counter() - started) * 1000
                slowest = max(slowest, elapsed)
                if not _same_answer(first, response):
                    run.problems.append(
                        f"a timed answer differs from the checked one ({response.status_code})"
                    )
            run.samples.append(slowest)
