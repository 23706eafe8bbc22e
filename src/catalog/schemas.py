"""Request and response bodies: one schema per operation.

Requests are Pydantic models that reject unknown fields. Responses are TypedDicts: the one
definition of each shape, both what the services build (checked by mypy) and what the
OpenAPI document publishes (FastAPI's `response_model`); they are sent without a second
validation pass.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    model_validator,
)
from typing_extensions import TypedDict

from catalog.models import (
    ITEM_DESCRIPTION_MAX_LENGTH,
    ITEM_NAME_MAX_LENGTH,
    TAG_NAME_MAX_LENGTH,
)

MAX_TAGS_PER_ITEM = 50
PRICE_LIMIT = Decimal(10) ** 10


def normalize_tag_name(value: str) -> str:
    """Tags are compared as stripped, lower-case text; '/' cannot appear in a URL path."""
    name = value.strip().lower()
    if not 1 <= len(name) <= TAG_NAME_MAX_LENGTH:
        raise ValueError(f"tag names are 1 to {TAG_NAME_MAX_LENGTH} characters")
    if "/" in name or not name.isprintable():
        raise ValueError("tag names may not contain '/' or control characters")
    return name


def validation_message(error: ValidationError) -> str:
    """A pydantic error as `field: message; field: message`."""
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        parts.append(f"{field}: {item['msg']}" if field else str(item["msg"]))
    return "; ".join(parts)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _unique(names: list[str]) -> list[str]:
    return sorted(set(names))


Email = Annotated[EmailStr, AfterValidator(_lower)]


def is_storable_text(value: str) -> bool:
    """Text any database can store: valid Unicode (no lone surrogates) without NUL."""
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable(value: str) -> str:
    if not is_storable_text(value):
        raise ValueError("text must be valid Unicode without NUL characters")
    return value


# Refused on every database alike, so SQLite and PostgreSQL give the same answer.
Text = Annotated[str, AfterValidator(_storable)]
FullName = Annotated[Text, StringConstraints(max_length=255)]
Password = Annotated[Text, StringConstraints(min_length=8, max_length=128)]
TagName = Annotated[str, AfterValidator(normalize_tag_name)]
TagNames = Annotated[list[TagName], Field(max_length=MAX_TAGS_PER_ITEM), AfterValidator(_unique)]
ItemName = Annotated[Text, StringConstraints(min_length=1, max_length=ITEM_NAME_MAX_LENGTH)]
Description = Annotated[Text, StringConstraints(max_length=ITEM_DESCRIPTION_MAX_LENGTH)]
# Money is exact: at most two decimals (more is an error, not a rounding), 0 <= p < 10^10.
Price = Annotated[
    Decimal,
    BeforeValidator(lambda v: _reject_bool(v)),
    Field(ge=0, lt=PRICE_LIMIT, decimal_places=2, allow_inf_nan=False),
    PlainSerializer(float, return_type=float, when_used="json"),
]


def _reject_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("price must be a number")
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _Patch(_Input):
    """Partial update: absent fields stay; null is allowed only where `NULLABLE` says so."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _null_only_where_allowed(self) -> _Patch:
        for name in self.model_fields_set:
            if getattr(self, name) is None and name not in self.NULLABLE:
                raise ValueError(f"{name} may not be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, and only those."""
        return self.model_dump(exclude_unset=True)


# --- users ---------------------------------------------------------------------------


class UserCreate(_Input):
    email: Email
    password: Password
    full_name: FullName | None = None


class UserUpdateMe(_Patch):
    full_name: FullName | None = None
    password: Password | None = None
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"full_name"})


class UserUpdate(_Patch):
    full_name: FullName | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"full_name"})


class UserAdminUpdate(UserUpdate):
    """A superuser's change to an account in the web admin, which may also set a password."""

    password: Password | None = None


class UserRead(TypedDict):
    """An account as the API returns it (never its password hash)."""

    id: int
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


# --- items ---------------------------------------------------------------------------


class ItemCreate(_Input):
    name: ItemName
    description: Description | None = None
    price: Price
    is_active: bool = True
    tags: TagNames | None = None


class ItemUpdate(_Patch):
    name: ItemName | None = None
    description: Description | None = None
    price: Price | None = None
    is_active: bool | None = None
    tags: TagNames | None = None
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"description"})


class ItemRead(TypedDict):
    """An item as the API returns it: price as a JSON number, tags sorted by code point."""

    id: int
    name: str
    description: str | None
    price: float
    is_active: bool
    created_at: datetime
    updated_at: datetime | None
    owner_id: int
    tags: list[str]


# --- tags ----------------------------------------------------------------------------


class TagCreate(_Input):
    name: TagName


class TagRead(TypedDict):
    """A tag with the number of items carrying it."""

    id: int
    name: str
    item_count: int


class Health(BaseModel):
    status: str
