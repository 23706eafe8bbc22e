"""Tag ids by name for the item lists: read once, remembered, checked in every statement.

A list filtered by tags puts their ids into its statement as literals (the planner then
knows how common each tag is), so it needs the ids before the statement. Reading them
cost a statement and a round trip per request; they are remembered per database instead
(`remembered`), and every statement built with them tests that each id still has its
name (`still_named`). A tag deleted, or an id meaning another tag (a restore of another
backup), then matches nothing: the caller, given an empty page, looks the names up again
(`look_up`) and answers from what it reads.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, bindparam, exists, select

from catalog.db.backends import Backend
from catalog.db.compiled import CompiledQuery
from catalog.db.types import STRING_LIST, each_string
from catalog.db.unit_of_work import UnitOfWork
from catalog.models import Tag

# Names remembered per database; past this many (a flood of distinct names), start over.
REMEMBERED_TAGS = 4096

_TAG_IDS = CompiledQuery(
    select(Tag.id, Tag.name).where(
        Tag.name.in_(
            select(
                each_string(bindparam("names", type_=STRING_LIST))
                .table_valued("value", name="value")
                .c.value
            )
        )
    )
)


def _memo(backend: Backend) -> dict[str, int]:
    return {}


def remembered(uow: UnitOfWork, names: Collection[str]) -> dict[str, int] | None:
    """The remembered ids of all of `names`, or None if one of them is not remembered, or
    if two share an id (one of them is stale: the id has passed to another name)."""
    memo = uow.strategy(_memo)
    found = {name: memo[name] for name in names if name in memo}
    complete = len(found) == len(names) and len(set(found.values())) == len(found)
    return found if complete else None


async def look_up(uow: UnitOfWork, names: Collection[str]) -> dict[str, int]:
    """The ids of the named tags that exist (one statement whatever their number),
    remembered from now on; names without a tag are forgotten."""
    rows = await uow.fetch_all(_TAG_IDS, names=sorted(names))
    found = {str(row["name"]): int(row["id"]) for row in rows}
    memo = uow.strategy(_memo)
    if len(memo) + len(found) > REMEMBERED_TAGS:
        memo.clear()
    for name in names:
        if name in found:
            memo[name] = found[name]
        else:
            memo.pop(name, None)
    return found


def still_named(ids: Sequence[ColumnElement[int]]) -> list[ColumnElement[bool]]:
    """Conditions: each tag id still has the name it was looked up by (the parameters
    `name_parameters` gives). Uncorrelated, so evaluated once per statement (a primary
    key probe per tag)."""
    return [
        exists(select(Tag.id).where(Tag.id == tag_id, Tag.name == bindparam(f"tag_name_{i}")))
        for i, tag_id in enumerate(ids)
    ]


def name_parameters(found: dict[str, int]) -> dict[str, str]:
    """The parameters of `still_named` for the ids of `found`, in ascending id order."""
    name_of = {tag_id: name for name, tag_id in found.items()}
    return {f"tag_name_{i}": name_of[tag_id] for i, tag_id in enumerate(sorted(name_of))}
