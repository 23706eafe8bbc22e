"""Progress reporting for long-running commands (seed, export, import), without any UI.

The library code reports events; the CLI decides how to show them (a rich bar on a
terminal). Tests and library callers can pass nothing and get `NoProgress`.
"""

from __future__ import annotations

from typing import Protocol


class ProgressSink(Protocol):
    """Receives progress per phase: its total (None when unknown) and advances."""

    def start(self, phase: str, total: int | None) -> None: ...

    def advance(self, phase: str, amount: int) -> None: ...


class NoProgress:
    """A sink that ignores every event."""

    def start(self, phase: str, total: int | None) -> None:
        pass

    def advance(self, phase: str, amount: int) -> None:
        pass
