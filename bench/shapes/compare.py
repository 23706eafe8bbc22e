"""`python -m bench.shapes.compare A.json B.json`: each shape's median in B over A.

For the growth from 1M to 10M items (issue 14: at most 1.5x per request), or from one
build to another. Prints a Markdown table, slowest growth first, and the largest ratio.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson


def _load(path: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(Path(path).read_bytes())
    return data


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Markdown lines: shape, both medians and answers, the ratio (B / A)."""
    rows: list[tuple[float, list[str]]] = []
    for label, first in a["shapes"].items():
        second = b["shapes"].get(label)
        if second is None:
            continue
        x, y = first["median_ms"], second["median_ms"]
        ratio = y / x if x and y is not None else float("nan")
        answers = (
            first["answer"]
            if first["answer"] == second["answer"]
            else (f"{first['answer']} / {second['answer']}")
        )
        cells = [label, answers, _ms(x), _ms(y), "-" if ratio != ratio else f"{ratio:.2f}x"]
        rows.append((ratio if ratio == ratio else -1.0, cells))
    rows.sort(key=lambda row: row[0], reverse=True)
    head = (
        f"| shape | answer | {a['backend']} {a['items']:,} ms | {b['backend']} {b['items']:,} ms"
        " | ratio |"
    )
    lines = [head, "|---|---|--:|--:|--:|"]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in rows]
    if rows:
        lines.append("")
        lines.append(f"largest ratio: {rows[0][1][0]} {rows[0][1][4]}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m bench.shapes.compare A.json B.json", file=sys.stderr)
        return 2
    print("\n".join(compare(_load(args[0]), _load(args[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
