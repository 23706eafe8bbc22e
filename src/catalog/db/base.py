"""The declarative base every model inherits, with stable constraint names."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, configure_mappers

# Explicit names keep constraints identical across databases and addressable in migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class for the ORM models."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def configure_models() -> None:
    """Configure the ORM's mappers now (idempotent). Otherwise the first statement that
    needs them does it, in some request (~50 ms), after the worker froze what it holds."""
    configure_mappers()
