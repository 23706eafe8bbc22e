"""The one table a run prints (Markdown, so it can go into bench/README.md as is)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.counting import QueryCounts
from bench.load import LoadResult
from bench.scenarios import SCENARIOS

RATIO_TARGET = 0.40
CURSOR_TARGET = 1.5  # deep cursor p50 / first page p50
SEARCH_P50_TARGET_MS = 20.0
RSS_TARGET_MIB = 120.0
OBSERVED = "service+obs"  # the service with metrics and JSON logs on (issue 9)
VIA_PGBOUNCER = "service+pgbouncer"  # the service through PgBouncer, transaction mode (issue 10)
BY_HAND = "fastapi-by-hand"  # FastAPI routes over asyncpg, response models, no guards (issue 15)
SERVERS = ("service", OBSERVED, VIA_PGBOUNCER, BY_HAND, "baseline")
# Issue 15: the service (with metrics and JSON logs on) against fastapi-by-hand and the baseline.
BY_HAND_TARGET = 1.0
BASELINE_TARGETS = {"item": 0.6, "create": 0.6, "update": 0.6, "page": 0.8}
COST_TARGET = 0.05  # metrics + JSON logs may cost at most 5% of requests/s
# Issue 14: `filtered` served 125 req/s at 64 connections when the issue was filed.
FILTERED_RPS_BEFORE = 125.0
FILTERED_SPEEDUP_TARGET = 5.0
FILTERED_P50_TARGET_MS = 100.0
FILTERED_VS_PAGE_TARGET = 0.8
SEARCH_P50_LIST_TARGET_MS = 10.0
DEEP_SKIP_VS_PAGE_TARGET = 1.5  # deep_skip is bounded: p50 within 1.5x the first page's


@dataclass
class RunReport:
    """Everything measured in one run."""

    settings: str
    dataset: str
    loads: dict[str, dict[str, LoadResult]] = field(default_factory=dict)
    runs: dict[str, dict[str, list[LoadResult]]] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, QueryCounts]] = field(default_factory=dict)
    rss_mib: dict[str, float | None] = field(default_factory=dict)
    rss_now_mib: dict[str, float | None] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    answers_checked: bool = False
    postgresql: str = "?"

    def cost(self, scenario: str) -> float | None:
        """How much less req/s the service serves with metrics and JSON logs on (0.03 = 3%)."""
        runs = self.loads.get(scenario, {})
        if "service" not in runs or OBSERVED not in runs or not runs["service"].rps:
            return None
        return 1 - runs[OBSERVED].rps / runs["service"].rps

    def ratio(self, scenario: str, server: str = "service", to: str = "baseline") -> float | None:
        """`server`'s req/s over `to`'s in this run's `scenario` (None: one is missing)."""
        runs = self.loads.get(scenario, {})
        if server not in runs or to not in runs or not runs[to].rps:
            return None
        return runs[server].rps / runs[to].rps


def machine() -> str:
    """CPU model and count, for the record."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()},"
        f" Python {platform.python_version()}"
    )


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(report: RunReport) -> list[str]:
    lines = [
        "| scenario | server | conns | req/s | p50 ms | p99 ms | errors | ratio | ÷ by-hand"
        " | CPU µs/req | SQL/req | SA/req | trips/req | BEGIN/req |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for scenario in SCENARIOS:
        runs = report.loads.get(scenario.name)
        if not runs:
            continue
        for server in SERVERS:
            if server not in runs:
                continue
            load = runs[server]
            counts = report.counts.get(server, {}).get(scenario.name)
            ours = server in ("service", OBSERVED, VIA_PGBOUNCER)
            ratio = report.ratio(scenario.name, server) if server != "baseline" else None
            by_hand = report.ratio(scenario.name, server, BY_HAND) if ours else None
            cells = [
                scenario.name if server == SERVERS[0] or SERVERS[0] not in runs else "",
                server,
                str(report.connections[scenario.name]),
                _num(load.rps, 0),
                _num(load.p50_ms if load.requests else None, 2),
                _num(load.p99_ms if load.requests else None, 2),
                str(load.errors),
                f"{ratio:.2f}x" if ratio is not None else "",
                f"{by_hand:.2f}x" if by_hand is not None else "",
                _num(load.cpu_us_per_request, 0),
                _num(counts.executes if counts else None),
                _num(counts.statements if counts else None),
                _num(counts.round_trips if counts else None),
                _num(counts.transactions if counts else None),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


LEGEND = (
    "req/s, p50, p99: what wrk saw in the measured interval (requests slower than 5 s count as"
    " timeout errors and not in the latencies). errors: socket errors + HTTP statuses >= 400."
    " ratio: the server's req/s / baseline req/s; ÷ by-hand: / fastapi-by-hand req/s"
    " (FastAPI routes over asyncpg with Pydantic response models, the baseline's SQL, no"
    " guards). CPU µs/req: the server's CPU time over the requests served. service+obs:"
    " the same build with METRICS=on,"
    " LOG_FORMAT=json, LOG_LEVEL=INFO, one access line per request and multiprocess metrics"
    " (service: METRICS=off, ACCESS_LOG=false, LOG_LEVEL=WARNING). Per request, counted"
    " in-process on the wire to"
    " PostgreSQL: SQL = statements executed (BEGIN/COMMIT included), trips = round trips waited"
    " for, BEGIN = transactions opened; SA = statements SQLAlchemy's before_cursor_execute saw"
    " (the service; statements run on the raw driver connection do not show there)."
    " service+pgbouncer (--via-pgbouncer): the service with DATABASE_POOLER=transaction"
    " through a private PgBouncer in transaction mode (not counted in-process: -)."
)


def _cost_table(report: RunReport) -> list[str]:
    """Issue 9: the same build with metrics and JSON logs off and on, per scenario."""
    costs = {s.name: report.cost(s.name) for s in SCENARIOS if s.name in report.loads}
    measured = {name: cost for name, cost in costs.items() if cost is not None}
    if not measured:
        return []
    lines = [
        "What observing costs (issue 9): the service with metrics and JSON logs off and on",
        "",
        "| scenario | off req/s | on req/s | difference | off p50 ms | on p50 ms"
        " | off CPU µs/req | on CPU µs/req | CPU difference | runs each |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, cost in measured.items():
        off, on = report.loads[name]["service"], report.loads[name][OBSERVED]
        rounds = len(report.runs.get(name, {}).get(OBSERVED, [])) or 1
        off_cpu, on_cpu = off.cpu_us_per_request, on.cpu_us_per_request
        cpu_cost = f"{on_cpu / off_cpu - 1:+.1%}" if off_cpu and on_cpu else "-"
        lines.append(
            f"| {name} | {off.rps:,.0f} | {on.rps:,.0f} | {-cost:+.1%} |"
            f" {_num(off.p50_ms, 2)} | {_num(on.p50_ms, 2)} | {_num(off_cpu, 0)} |"
            f" {_num(on_cpu, 0)} | {cpu_cost} | {rounds} |"
        )
    worst = max(measured.items(), key=lambda kv: kv[1])
    ok = all(cost <= COST_TARGET for cost in measured.values())
    lines += [
        "",
        f"- every scenario within {COST_TARGET:.0%} of the off req/s with metrics and JSON"
        f" logs on: {_verdict(ok)} (largest loss: {worst[0]} {worst[1]:.1%})",
        "",
        "CPU µs/req: the server process's CPU time (user + system, from /proc) in the measured"
        " intervals over the requests served: what a request costs, which machine load disturbs"
        " less than req/s.",
        "",
    ]
    return lines


def _pooler_table(report: RunReport) -> list[str]:
    """Issue 10: the service through PgBouncer (transaction mode) against the service direct."""
    pairs = {
        s.name: (runs["service"], runs[VIA_PGBOUNCER])
        for s in SCENARIOS
        if "service" in (runs := report.loads.get(s.name, {})) and VIA_PGBOUNCER in runs
    }
    if not pairs:
        return []
    lines = [
        "What the pooler costs (issue 10): the service through PgBouncer (transaction mode)"
        " against the service direct, same workers and pool sizes",
        "",
        "| scenario | direct req/s | pooled req/s | req/s ratio | direct p50 ms | pooled p50 ms"
        " | p50 ratio | direct CPU µs/req | pooled CPU µs/req | CPU ratio |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, (direct, pooled) in pairs.items():
        cells = [
            name,
            _num(direct.rps, 0),
            _num(pooled.rps, 0),
            _ratio(pooled.rps, direct.rps),
            _num(direct.p50_ms, 2),
            _num(pooled.p50_ms, 2),
            _ratio(pooled.p50_ms, direct.p50_ms),
            _num(direct.cpu_us_per_request, 0),
            _num(pooled.cpu_us_per_request, 0),
            _ratio(pooled.cpu_us_per_request, direct.cpu_us_per_request),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [
        *lines,
        "",
        "pooled CPU µs/req: the service's processes and PgBouncer's together. The pooled path"
        " pays an extra hop per round trip, no prepared-statement cache (each statement is"
        " parsed and planned again) and one statement per transaction to set its time bounds.",
        "",
    ]


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if value and reference else "-"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def _targets(report: RunReport) -> list[str]:
    lines = ["Targets (issue 3):", ""]
    ratios = {s.name: report.ratio(s.name) for s in SCENARIOS if s.name in report.loads}
    measured = {name: r for name, r in ratios.items() if r is not None}
    worst = min(measured.items(), key=lambda kv: kv[1]) if measured else None
    ok = all(r >= RATIO_TARGET for r in measured.values()) if measured else None
    below = ", ".join(f"{n} {r:.2f}x" for n, r in measured.items() if r < RATIO_TARGET)
    lines.append(
        f"- every endpoint >= {RATIO_TARGET:.2f}x the baseline: {_verdict(ok)}"
        + (f" (lowest: {worst[0]} {worst[1]:.2f}x)" if worst else "")
        + (f"; below: {below}" if below else "")
    )
    service = {name: runs["service"] for name, runs in report.loads.items() if "service" in runs}
    if "deep_cursor" in service and "page" in service:
        factor = service["deep_cursor"].p50_ms / service["page"].p50_ms
        lines.append(
            f"- deep cursor p50 within {CURSOR_TARGET}x of the first page p50:"
            f" {_verdict(factor <= CURSOR_TARGET)} ({service['deep_cursor'].p50_ms:.2f} ms vs"
            f" {service['page'].p50_ms:.2f} ms = {factor:.2f}x)"
        )
    else:
        lines.append(
            "- deep cursor p50 within 1.5x of the first page: n/a (needs page and deep_cursor)"
        )
    if "search" in service:
        p50 = service["search"].p50_ms
        lines.append(
            f"- q search p50 < {SEARCH_P50_TARGET_MS:.0f} ms at {report.connections['search']}"
            f" connections: {_verdict(p50 < SEARCH_P50_TARGET_MS)} ({p50:.2f} ms)"
        )
    lines += _floor_targets(report)
    rss = report.rss_mib.get("service")
    measured_rss = ", ".join(f"{name} {_num(mib)} MiB" for name, mib in report.rss_mib.items())
    lines.append(
        f"- peak RSS < {RSS_TARGET_MIB:.0f} MiB per worker: "
        f"{_verdict(None if rss is None else rss < RSS_TARGET_MIB)} ({measured_rss})"
    )
    return lines


def _floor_targets(report: RunReport) -> list[str]:
    """Issue 15's ratios, for the service with metrics and JSON logs on when it was loaded."""
    server = OBSERVED if any(OBSERVED in runs for runs in report.loads.values()) else "service"
    lines = []
    by_hand = {s.name: report.ratio(s.name, server, BY_HAND) for s in SCENARIOS}
    measured = {name: r for name, r in by_hand.items() if r is not None}
    if measured:
        below = [f"{n} {r:.2f}x" for n, r in measured.items() if r < BY_HAND_TARGET]
        lines.append(
            f"- {server} >= {BY_HAND_TARGET:.1f}x {BY_HAND} on every scenario:"
            f" {_verdict(not below)}" + (f"; below: {', '.join(below)}" if below else "")
        )
    for name, target in BASELINE_TARGETS.items():
        ratio = report.ratio(name, server)
        if ratio is not None:
            lines.append(
                f"- {name}: {server} >= {target:.1f}x the baseline:"
                f" {_verdict(ratio >= target)} ({ratio:.2f}x)"
            )
    return lines


def _list_targets(report: RunReport) -> list[str]:
    """Issue 14's targets under load: filtered, search and deep_skip."""
    service = {name: runs["service"] for name, runs in report.loads.items() if "service" in runs}
    lines = ["", "Targets (issue 14, lists at index speed):", ""]
    filtered, page = service.get("filtered"), service.get("page")
    if filtered is not None:
        wanted = FILTERED_RPS_BEFORE * FILTERED_SPEEDUP_TARGET
        lines.append(
            f"- filtered >= {FILTERED_SPEEDUP_TARGET:g}x the {FILTERED_RPS_BEFORE:g} req/s"
            f" measured when the issue was filed ({wanted:g}):"
            f" {_verdict(filtered.rps >= wanted)} ({filtered.rps:,.0f} req/s)"
        )
        lines.append(
            f"- filtered p50 <= {FILTERED_P50_TARGET_MS:g} ms:"
            f" {_verdict(filtered.p50_ms <= FILTERED_P50_TARGET_MS)} ({filtered.p50_ms:.2f} ms)"
        )
        if page is not None and page.rps:
            share = filtered.rps / page.rps
            lines.append(
                f"- filtered >= {FILTERED_VS_PAGE_TARGET:g}x page's req/s in this run:"
                f" {_verdict(share >= FILTERED_VS_PAGE_TARGET)} ({share:.2f}x)"
            )
    search = service.get("search")
    if search is not None:
        lines.append(
            f"- search p50 <= {SEARCH_P50_LIST_TARGET_MS:g} ms at"
            f" {report.connections['search']} connections:"
            f" {_verdict(search.p50_ms <= SEARCH_P50_LIST_TARGET_MS)} ({search.p50_ms:.2f} ms)"
        )
    deep = service.get("deep_skip")
    if deep is not None:
        refused = deep.requests > 0 and deep.status_errors >= deep.requests
        how = "refused (offset past the documented maximum)" if refused else "answered"
        bounded = None
        if page is not None and page.p50_ms and deep.requests:
            bounded = deep.socket_errors == 0 and (
                deep.p50_ms <= DEEP_SKIP_VS_PAGE_TARGET * page.p50_ms
            )
        lines.append(
            f"- deep_skip bounded (p50 <= {DEEP_SKIP_VS_PAGE_TARGET:g}x page's, no timeouts):"
            f" {_verdict(bounded)} ({how}: {deep.rps:,.0f} req/s, p50 {deep.p50_ms:.2f} ms,"
            f" {deep.socket_errors} socket errors/timeouts)"
        )
    return lines if len(lines) > 3 else []


def render(report: RunReport) -> str:
    """The run as Markdown: context, the table, peak RSS, answer checks, targets."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"- Date: {now}",
        f"- Machine: {machine()}, PostgreSQL {report.postgresql}",
        f"- Dataset: {report.dataset}",
        f"- Load: {report.settings}",
        "",
        *_table(report),
        "",
        "Peak RSS (VmHWM) after the run: "
        + ", ".join(
            f"{server} {_num(report.rss_mib.get(server))} MiB"
            for server in SERVERS
            if server in report.rss_mib
        ),
        "",
        "Resident (VmRSS) at the end: "
        + ", ".join(
            f"{server} {_num(report.rss_now_mib.get(server))} MiB"
            for server in SERVERS
            if server in report.rss_now_mib
        )
        # The service alone is logged into (POST /auth/token): security.py's argon2 cost.
        + " (the service's peak includes the one login's argon2 hash: 19 MiB, given back)",
        "",
    ]
    lines += [LEGEND, ""]
    lines += _cost_table(report)
    lines += _pooler_table(report)
    if report.notes:
        lines += ["Notes:", "", *(f"- {note}" for note in report.notes), ""]
    if report.mismatches:
        lines += ["Answers that differ from the baseline's:", ""]
        lines += [f"- {m}" for m in report.mismatches]
    elif report.answers_checked:
        lines.append(
            "Service (and fastapi-by-hand) and baseline gave the same answers for every checked"
            " request."
        )
    lines += ["", *_targets(report), *_list_targets(report)]
    return "\n".join(lines)
