"""Row versions: optimistic concurrency written into the write's own WHERE.

Every update of an item or a user increments its `version` in the same statement. A
client that read version 3 and sends it back (HTTP If-Match) gets its write applied only
if the row is still at version 3: the comparison is part of the UPDATE or DELETE, never a
read followed by a write, so two clients can never both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Integer, bindparam
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")

# How many versions one precondition may list (If-Match: "a", "b", ...): each count is a
# statement shape of its own, so the number of shapes stays small.
MAX_EXPECTED_VERSIONS = 8

Expected = tuple[int, ...] | None
"""The versions a write is conditional on: None, unconditional; () matches nothing."""


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """A resource as the API shows it, and the version it is at."""

    value: T
    version: int


def version_matches(column: InstrumentedAttribute[int], count: int) -> list[ColumnElement[bool]]:
    """The WHERE terms requiring `column` to be one of `count` expected versions."""
    if count == 0:
        return []
    params = [bindparam(f"expected_{i}", type_=Integer) for i in range(count)]
    return [column == params[0] if count == 1 else column.in_(params)]


def expected_params(expected: Expected) -> dict[str, Any]:
    """The bound values for `version_matches`."""
    return {f"expected_{i}": version for i, version in enumerate(expected or ())}
