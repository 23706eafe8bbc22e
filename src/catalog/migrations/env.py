"""Alembic environment: the URL comes from the application settings, never alembic.ini.

Runs on the sync engine (psycopg / sqlite3). Batch mode on SQLite lets later
migrations ALTER tables; type and server-default comparison keep autogenerate honest.
"""

from __future__ import annotations

import sys
from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from catalog import models  # noqa: F401  (registers the tables on the metadata)
from catalog.config import Settings, SettingsError, get_settings
from catalog.db.base import Base
from catalog.db.engine import create_sync_engine
from catalog.db.types import StringList, UTCDateTime

target_metadata = Base.metadata


def _settings() -> Settings:
    given = context.config.attributes.get("settings")
    if given is not None:
        return given  # type: ignore[no-any-return]
    try:
        return get_settings()
    except SettingsError as error:
        sys.exit(f"error: {error}")


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    # Render our TypeDecorators as their plain SQL types: migrations stay importable
    # without the application code changing under them.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, StringList):
        return "sa.JSON()"
    return False


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Objects only one backend has (e.g. the pg_trgm index) are not drift elsewhere.
    info = getattr(obj, "info", {}) or getattr(compare_to, "info", {})
    if info.get("postgresql_only"):
        return context.get_context().dialect.name == "postgresql"
    return True


def _configure(connection: Connection | None = None, **kw: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        render_as_batch=True,
        render_item=_render_item,
        include_object=_include_object,
        **kw,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`)."""
    from catalog.db.urls import resolve_urls

    url = resolve_urls(_settings().database_url).sync_url
    _configure(url=url.render_as_string(hide_password=False), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_sync_engine(_settings())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
