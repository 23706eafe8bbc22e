"""The records of an export file: their fields, how values are written, how they are checked.

Three kinds of record, each identified by its natural key: a user by email, a tag by name,
an item by id (items have no natural key; an id is never reused, so it names one item for
the life of a database). An item names its owner by email and its tags by name, never by
database id, so a file can go into any database.

Values are written exactly: prices as decimal text with two decimals ("9999999999.99"),
timestamps as ISO 8601 in UTC with microseconds ("2026-01-01T09:30:00.000000Z"), booleans
as booleans. An import validates every record with the API's own rules (`catalog.schemas`:
email normalisation, name, description, price and tag rules), so it cannot store what the
API would refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from catalog.models import MAX_ID, PASSWORD_HASH_MAX_LENGTH
from catalog.schemas import (
    Description,
    Email,
    FullName,
    ItemName,
    Price,
    TagName,
    TagNames,
    is_storable_text,
)
from catalog.security import is_password_hash

FORMAT_VERSION = 1


class Kind(StrEnum):
    """The kinds of record, in the order their sections appear in a file."""

    USER = "user"
    TAG = "tag"
    ITEM = "item"


FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.USER: ("email", "full_name", "is_active", "is_superuser", "created_at", "hashed_password"),
    Kind.TAG: ("name",),
    Kind.ITEM: (
        "id",
        "owner",
        "name",
        "description",
        "price",
        "is_active",
        "created_at",
        "updated_at",
        "tags",
    ),
}
"""Each kind's fields, in the order they are written."""

Value = str | int | bool | list[str] | None
Fields = dict[str, Value]


class LineError(ValueError):
    """The file is refused at `line`: the message says why."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def timestamp_text(value: datetime) -> str:
    """ISO 8601, UTC, always with microseconds: one spelling per instant."""
    # isoformat of the naive UTC value, not strftime: a third of the time, a million times.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def price_text(value: Decimal) -> str:
    """Exact decimal text with the column's two decimals."""
    return f"{value:.2f}"


_TEXT: dict[str, Callable[[Any], str]] = {
    "created_at": timestamp_text,
    "updated_at": timestamp_text,
    "price": price_text,
}
_CONVERTED = {kind: [name for name in FIELDS[kind] if name in _TEXT] for kind in Kind}


def plain_fields(kind: Kind, row: Sequence[Any]) -> Fields:
    """A database row (columns in `FIELDS[kind]` order) as the values a file holds."""
    fields: Fields = dict(zip(FIELDS[kind], row, strict=True))
    for name in _CONVERTED[kind]:
        value = fields[name]
        if value is not None:
            fields[name] = _TEXT[name](value)
    return fields


# --- validation --------------------------------------------------------------------------

_EMAIL: TypeAdapter[str] = TypeAdapter(Email)


@lru_cache(maxsize=4096)
def _normalized_email(value: str) -> str:
    return _EMAIL.validate_python(value)


def _owner_email(value: Any) -> Any:
    # The same rule as `Email`, cached: a file names each owner on many items, and the
    # email validator costs more than the rest of an item's checks together.
    if not isinstance(value, str):
        return value  # the `str` type reports it
    try:
        return _normalized_email(value)
    except ValidationError as error:
        reason = str(error.errors()[0]["msg"])
        raise PydanticCustomError("value_error", "{reason}", {"reason": reason}) from None


def _password_hash(value: str) -> str:
    if (
        not is_storable_text(value)
        or len(value) > PASSWORD_HASH_MAX_LENGTH
        or not is_password_hash(value)
    ):
        raise ValueError("not a password hash this service can verify")
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(lambda value: value.astimezone(UTC))]
ItemId = Annotated[int, Field(gt=0, le=MAX_ID)]
OwnerEmail = Annotated[str, BeforeValidator(_owner_email)]
PasswordHash = Annotated[str, AfterValidator(_password_hash)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserRecord(_Record):
    """A user; `hashed_password` None means "not in the file" (see the importer)."""

    email: Email
    full_name: FullName | None = None
    is_active: bool = True
    is_superuser: bool = False
    created_at: Timestamp
    hashed_password: PasswordHash | None = None

    @property
    def key(self) -> str:
        return self.email


class TagRecord(_Record):
    """A tag, by its normalized name."""

    name: TagName

    @property
    def key(self) -> str:
        return self.name


class ItemRecord(_Record):
    """An item with its owner's email and its (normalized, sorted, distinct) tag names."""

    id: ItemId
    owner: OwnerEmail
    name: ItemName
    description: Description | None = None
    price: Price
    is_active: bool = True
    created_at: Timestamp
    updated_at: Timestamp | None = None
    tags: TagNames = []

    @property
    def key(self) -> int:
        return self.id


Record = UserRecord | TagRecord | ItemRecord
MODELS: dict[Kind, type[Record]] = {
    Kind.USER: UserRecord,
    Kind.TAG: TagRecord,
    Kind.ITEM: ItemRecord,
}
