"""Is an answer right? Compare it with plain SQL's, or with the documented refusal.

The rules a build documents (a minimum `q` length, a maximum offset, a cap on exact counts)
are read from its settings (`rules_from_settings`) and can be overridden on the command
line. Where a rule applies, the refusal is the right answer: 422 naming `q`, 400 naming
cursor pagination. Counts: `X-Total-Count` is exact unless `X-Total-Count-Exact: false`
says it is a lower bound, in which case more rows must really match (and, with a known cap,
the number is the cap and the true total exceeds it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from bench.shapes.oracle import Expected, ListRequest

TOTAL, EXACT = "x-total-count", "x-total-count-exact"


@dataclass(frozen=True)
class Rules:
    """What the served build documents about refusals and totals (0 / None: no rule)."""

    min_q_length: int = 0  # q must hold this many letters or digits in a row (0, 1: no rule)
    max_offset: int | None = None
    count_cap: int | None = None
    max_tags: int = 10

    def describe(self) -> str:
        return (
            f"q with >= {self.min_q_length or 1} letters/digits in a row,"
            f" skip <= {self.max_offset or 'any'},"
            f" exact counts up to {self.count_cap or 'any'}, <= {self.max_tags} tags"
        )


def rules_from_settings(database_url: str, secret: str) -> Rules:
    """The rules of the build on the import path, from its settings (the environment the
    served instance inherits); a setting the build does not have is no rule."""
    from catalog.config import load_settings

    settings = load_settings(database_url=database_url, secret_key=secret)

    def setting(*names: str) -> Any:
        return next((getattr(settings, n) for n in names if hasattr(settings, n)), None)

    try:  # a constant of the API module in the listfast build: not a setting
        # The app first, as the server imports it: importing catalog.api.listing on its
        # own runs into a circular import (catalog.api.consistency <-> middleware), and
        # the ImportError read as "no rule" (the 1- and 2-letter q shapes then WRONG).
        import catalog.api.app  # noqa: F401
        from catalog.api import listing

        min_word = int(getattr(listing, "MIN_QUERY_WORD", 0))
    except ImportError:
        min_word = 0
    return Rules(
        min_q_length=int(setting("min_q_length", "min_query_length") or min_word),
        max_offset=setting("max_offset"),
        count_cap=setting("count_exact_limit", "count_limit", "count_cap"),
        max_tags=int(setting("max_tag_filters") or 10),
    )


@dataclass(frozen=True)
class Refusal:
    """The documented refusal of a request: status, and what the message must name."""

    status: int
    names: str  # the query parameter (422) or the word the message must contain (400)
    rule: str


def refusal(request: ListRequest, rules: Rules) -> Refusal | None:
    """The refusal `rules` document for this request, if any."""
    if request.q is not None and rules.min_q_length > 1:
        word = re.compile(rf"[^\W_]{{{rules.min_q_length}}}")
        if not word.search(request.q):
            return Refusal(422, "q", f"q without {rules.min_q_length} letters/digits in a row")
    if rules.max_offset is not None and request.skip > rules.max_offset:
        return Refusal(400, "cursor", f"skip > {rules.max_offset}")
    return None


def _body(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def check_refusal(status: int, content: bytes, expected: Refusal) -> list[str]:
    """Problems with a refusal answer (empty: it is the documented one)."""
    if status != expected.status:
        return [f"{expected.rule}: expected {expected.status}, got {status}"]
    body = _body(content)
    detail = body.get("detail") if isinstance(body, dict) else None
    if expected.status == 422:
        named = isinstance(detail, list) and any(
            isinstance(e, dict) and expected.names in (e.get("loc") or []) for e in detail
        )
    else:
        named = expected.names in str(detail).lower()
    return [] if named else [f"{expected.rule}: the {status} does not name {expected.names!r}"]


def _check_total(headers: dict[str, str], total: int | None, rules: Rules) -> list[str]:
    if total is None:
        return (
            [f"X-Total-Count sent without count=true: {headers[TOTAL]}"] if TOTAL in headers else []
        )
    if TOTAL not in headers:
        return ["count=true but no X-Total-Count"]
    try:
        counted = int(headers[TOTAL])
    except ValueError:
        return [f"X-Total-Count is not a number: {headers[TOTAL]!r}"]
    exact = headers.get(EXACT, "true")
    if exact == "true":
        return [] if counted == total else [f"X-Total-Count {counted}, SQL counts {total}"]
    if exact != "false":
        return [f"{EXACT} is {exact!r}, not true/false"]
    problems = []
    if total <= counted:
        problems.append(f"X-Total-Count {counted} flagged a lower bound, but only {total} match")
    if rules.count_cap is not None and (counted != rules.count_cap or total <= rules.count_cap):
        problems.append(f"lower bound {counted} (cap {rules.count_cap}) with {total} matches")
    return problems


def check_page(
    status: int,
    headers: dict[str, str],
    content: bytes,
    expected: Expected,
    rules: Rules,
    has_link: bool,
) -> list[str]:
    """Problems with one page (empty: the ids in order, their tags, the next link and the
    total all agree with plain SQL)."""
    if status != 200:
        return [f"status {status}: {content[:160]!r}"]
    body = _body(content)
    if not isinstance(body, list):
        return [f"body is not a JSON array: {content[:120]!r}"]
    ids = [item.get("id") for item in body if isinstance(item, dict)]
    problems = []
    if ids != expected.ids:
        first = next(
            (i for i, (a, b) in enumerate(zip(ids, expected.ids, strict=False)) if a != b),
            min(len(ids), len(expected.ids)),
        )
        problems.append(
            f"ids differ at position {first}: got {ids[first : first + 3]} (of {len(ids)}),"
            f" SQL {expected.ids[first : first + 3]} (of {len(expected.ids)})"
        )
    else:
        for item in body:
            want = expected.tags.get(item["id"], [])
            if sorted(item.get("tags") or []) != want:
                problems.append(f"item {item['id']}: tags {item.get('tags')}, SQL {want}")
                break
    if has_link != expected.has_next:
        problems.append(f"Link rel=next {'present' if has_link else 'absent'}, SQL disagrees")
    return problems + _check_total(headers, expected.total, rules)
