"""`q` on SQLite through an FTS5 trigram index of the lower-cased item names (migration 0011).

PostgreSQL answers `q` from its pg_trgm index; SQLite has no index for a substring, so it
read every name (1.3-1.5 s at 1M items for a `q` matching little or nothing). The table
`items_name_trigrams` holds `unicode_lower(items.name)` under the item's id, kept by
triggers on `items` in the writing transaction (SQLite has one writer at a time: the copy
is exact whatever the concurrency). Its trigram tokenizer (case-sensitive: the text is
lower-cased already, by the same function `unicode_ilike` folds with) indexes every three
characters in a row.

The index only *finds candidates*: every name that contains the search lower-cased
contains each of its trigrams, so the candidates include every match; `unicode_ilike`
then tests each candidate as before, so answers are those of the scan, exactly. Whether
the index pays depends on how many candidates there are (a `q` in a quarter of the names
is found sooner by walking the sort's index), which a probe of the index counts first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, text
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from catalog.db.compiled import CompiledQuery
from catalog.db.types import unicode_lower
from catalog.db.unit_of_work import UnitOfWork

TABLE = "items_name_trigrams"
# A page starts from the index up to this many candidates (each costs a row lookup and a
# test, ~10 us); above it, matches are dense enough (>= 0.5% at 1M items) that walking
# the sort's index finds a page sooner. A count, which needs up to COUNT_EXACT_LIMIT
# matches, starts from the index up to COUNT_CANDIDATES (>= 10%: the walk is shorter).
PAGE_CANDIDATES = 5_000
COUNT_CANDIDATES = 100_000

CANDIDATES = CompiledQuery(
    text(
        f"SELECT count(*) AS found FROM (SELECT rowid FROM {TABLE}"
        f" WHERE {TABLE} MATCH :trigrams LIMIT :probe)"
    )
)


def trigram_query(pattern: str) -> str | None:
    """The FTS5 query for the candidates of a `contains_pattern` pattern, or None when
    the search is shorter than a trigram (the index cannot find it).

    Built from the pattern as `unicode_ilike` lower-cases it, so that the trigrams are
    those of the very text the LIKE looks for. Every third trigram and the last one cover
    every character: fewer terms to intersect, the same candidates to within a few.
    """
    lowered = unicode_lower(pattern) or ""
    if len(lowered) < 2 or lowered[0] != "%" or lowered[-1] != "%":
        raise ValueError(f"not a contains_pattern: {pattern!r}")
    chars: list[str] = []
    escaped = False
    for char in lowered[1:-1]:
        if char == "\\" and not escaped:
            escaped = True
            continue
        chars.append(char)
        escaped = False
    literal = "".join(chars)
    if len(literal) < 3:
        return None
    starts = sorted({*range(0, len(literal) - 2, 3), len(literal) - 3})
    # An FTS5 string: double quotes doubled, nothing else special inside.
    return " AND ".join('"' + literal[i : i + 3].replace('"', '""') + '"' for i in starts)


class trigram_candidates(FunctionElement[bool]):
    """`trigram_candidates(items.id, :trigrams)`: the item is among the index's candidates
    (SQLite only; `unicode_ilike` must still test the name)."""

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # no `= 1` after it on SQLite (see carries_tags)


@compiles(trigram_candidates)
def _candidates_default(element: trigram_candidates, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError("trigram_candidates exists on SQLite only")


@compiles(trigram_candidates, "sqlite")
def _candidates_sqlite(element: trigram_candidates, compiler: SQLCompiler, **kw: Any) -> str:
    item_id, trigrams = (compiler.process(c, **kw) for c in element.clauses)
    return f"{item_id} IN (SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH {trigrams})"


async def plan(
    uow: UnitOfWork, params: dict[str, Any], *, counting: bool
) -> tuple[frozenset[str], frozenset[str]]:
    """The shapes (parameter names) of a list's page and count, each with `q_trigrams`
    (added to `params`) when it should start from the index's candidates.

    The candidates of `params["q"]` (a `contains_pattern`) are counted first, up to what
    decides: few, and the statement starts from them; many, and it walks its own index.
    """
    names = frozenset(params)
    trigrams = trigram_query(params["q"])
    if trigrams is None:
        return names, names
    limits = (PAGE_CANDIDATES, COUNT_CANDIDATES)
    probe = max(limits) if counting else limits[0]
    row = await uow.fetch_one(CANDIDATES, trigrams=trigrams, probe=probe + 1)
    found = int(row["found"]) if row is not None else 0
    params["q_trigrams"] = trigrams
    page, count = (names | {"q_trigrams"} if found <= limit else names for limit in limits)
    return page, count


def is_search_table(name: str) -> bool:
    """Whether a table is the index or one of the shadow tables FTS5 keeps for it."""
    return name == TABLE or name.startswith(f"{TABLE}_")
