"""Hooks: named points in the code that observers (metrics, tracing) subscribe to.

The code that emits knows nothing of who listens; with no subscriber an emit is one
truth test. An observer that raises is logged and skipped: observing must never break
the request it observes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")
logger = logging.getLogger("catalog.hooks")


class Hook(Generic[P]):
    """A list of callbacks with one signature, called in subscription order."""

    __slots__ = ("_name", "subscribers")

    def __init__(self, name: str) -> None:
        self._name = name
        # A tuple, replaced on change: emitting never sees a list mutated under it.
        self.subscribers: tuple[Callable[P, None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.subscribers)

    def subscribe(self, callback: Callable[P, None]) -> Callable[[], None]:
        """Call `callback` on every emit from now on; returns the function that stops it."""
        self.subscribers = (*self.subscribers, callback)

        def unsubscribe() -> None:
            self.subscribers = tuple(s for s in self.subscribers if s is not callback)

        return unsubscribe

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Call every subscriber; one that raises is logged, the others still run."""
        for callback in self.subscribers:
            try:
                callback(*args, **kwargs)
            except Exception:
                logger.exception("observer of %s failed", self._name)


# A login refused by the services: "invalid_credentials" or "inactive".
login_failed: Hook[[str]] = Hook("login_failed")

# A POST answered with the stored response of an earlier one (same Idempotency-Key).
idempotent_replayed: Hook[[]] = Hook("idempotent_replayed")

# An X-Catalog-LSN beyond the primary's WAL position (forged): ignored.
lsn_ignored: Hook[[]] = Hook("lsn_ignored")
