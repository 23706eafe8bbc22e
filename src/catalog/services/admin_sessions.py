"""Admin sessions: a per-account stamp that every admin request checks and a logout moves
on, so that signing out ends the session server-side (a saved cookie opens nothing)."""

from __future__ import annotations

from sqlalchemy import Integer, bindparam, select, update

from catalog.db.compiled import CompiledQuery
from catalog.db.unit_of_work import UnitOfWork
from catalog.models import User, is_valid_id

_BY_ID = User.id == bindparam("user_id", type_=Integer)
_ADMIN_SESSIONS = CompiledQuery(select(User.admin_sessions).where(_BY_ID))
_END_ADMIN_SESSIONS = CompiledQuery(
    update(User)
    .where(_BY_ID)
    .values(admin_sessions=User.admin_sessions + 1)
    .returning(User.admin_sessions)
)


async def admin_sessions(uow: UnitOfWork, user_id: int) -> int | None:
    """The account's admin session stamp (None if there is no such account): a session
    signed in at another stamp has ended."""
    row = await uow.fetch_one(_ADMIN_SESSIONS, user_id=user_id) if is_valid_id(user_id) else None
    return None if row is None else int(row["admin_sessions"])


async def end_admin_sessions(uow: UnitOfWork, user_id: int) -> None:
    """End every admin session of the account (a logout): its stamp moves on."""
    if is_valid_id(user_id):
        await uow.write(_END_ADMIN_SESSIONS, user_id=user_id)
