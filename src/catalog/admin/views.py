"""The admin's pages over users, items and tags: sqladmin views whose writes are the services'.

sqladmin renders its list, detail and form pages from ORM objects, so those reads use the
app's sessions (nothing is ever added, flushed or committed through them). Every write calls
the service function the API calls, in a unit of work of its own, so the API's rules hold
here too: tag normalization and uniqueness, the ownership rule (a superuser may edit any
item), `updated_at` set by the database, a new password revoking the account's tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError
from sqladmin import ModelView
from sqladmin.formatters import BASE_FORMATTERS
from sqlalchemy import Select, false, literal, or_
from starlette.exceptions import HTTPException
from starlette.requests import Request

from catalog.admin.forms import ItemForm, TagForm, UserForm
from catalog.db.database import Database
from catalog.db.types import contains_pattern, unicode_ilike
from catalog.errors import NotFoundError
from catalog.models import Item, Tag, User, is_valid_id
from catalog.schemas import ItemUpdate, UserAdminUpdate, is_storable_text, normalize_tag_name
from catalog.services import items, tags, users
from catalog.services.users import Principal
from catalog.services.versions import Expected

M = TypeVar("M", bound=BaseModel)


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _actor(request: Request) -> Principal:
    """The signed-in superuser (set by `SuperuserAuth.authenticate` on every admin request)."""
    principal: Principal = request.state.admin_principal
    return principal


def _validated(schema: type[M], data: Mapping[str, Any]) -> M:
    """`data` checked by the API's request schema; a ValueError sqladmin shows on the form."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        problems = (
            f"{'.'.join(str(part) for part in e['loc']) or 'form'}: {e['msg']}"
            for e in error.errors()
        )
        raise ValueError("; ".join(problems)) from None


def parse_id(value: Any) -> int | None:
    """A primary key from a URL, or None when it cannot name a row."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if is_valid_id(number) else None


def _expected(version: Any) -> Expected:
    """The version a form was filled from (None for a form without one)."""
    text = str(version or "").strip()
    # ASCII digits only: '²'.isdigit() is true, and int('²') raises.
    return (int(text),) if text.isascii() and text.isdigit() and len(text) < 10 else None


def _existing_id(value: Any) -> int:
    number = parse_id(value)
    if number is None:
        raise NotFoundError("No such row")
    return number


class ServiceModelView(ModelView):
    """A model view that writes only through the services.

    sqladmin's own writes (ORM sessions) are never reached: each view that allows a write
    overrides the hook with a service call; the others refuse.
    """

    can_export = False  # a full-table export belongs to `catalog export`, not a web page
    can_import = False
    page_size = 25
    page_size_options: ClassVar[list[int]] = [25, 50, 100]
    column_labels: ClassVar[dict[Any, str]] = {
        "id": "Id",
        "email": "Email",
        "full_name": "Full name",
        "name": "Name",
        "description": "Description",
        "price": "Price",
        "is_active": "Active",
        "is_superuser": "Superuser",
        "owner": "Owner",
        "tags": "Tags",
        "created_at": "Created",
        "updated_at": "Updated",
    }
    column_type_formatters: ClassVar[dict[type, Any]] = {
        **BASE_FORMATTERS,
        User: lambda user: user.email,
        Tag: lambda tag: tag.name,
    }

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        """Refused unless a view creates through its service."""
        raise NotImplementedError(f"{self.name_plural} are not created here")

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        """Refused unless a view updates through its service."""
        raise NotImplementedError(f"{self.name_plural} are not edited here")

    async def delete_model(self, request: Request, pk: Any) -> None:
        """Refused unless a view deletes through its service."""
        raise NotImplementedError(f"{self.name_plural} are not deleted here")

    def search_query(self, stmt: Select[Any], term: str) -> Select[Any]:
        """Case-insensitive substring search, the API's `q` (`unicode_ilike`)."""
        if not is_storable_text(term):
            return stmt.where(false())  # no stored text can contain it
        pattern = literal(contains_pattern(term))
        columns = self.column_searchable_list
        return stmt.where(or_(*(unicode_ilike(column, pattern) for column in columns)))

    # Ids that cannot name a row (text, or beyond the column's range) are 404 without SQL.
    async def get_object_for_details(self, request: Request) -> Any:
        if parse_id(request.path_params["pk"]) is None:
            return None
        return await super().get_object_for_details(request)

    async def get_object_for_edit(self, request: Request) -> Any:
        if parse_id(request.path_params["pk"]) is None:
            return None
        return await super().get_object_for_edit(request)

    async def get_object_for_delete(self, value: Any) -> Any:
        if parse_id(value) is None:
            return None
        return await super().get_object_for_delete(value)

    async def get_object_filepath(self, identifier: str, column_name: str) -> Path:
        """Never a file: Catalog has no file columns, and sqladmin would read the column's
        text as a path under the working directory (`.secret_key`, the SQLite file).
        `mount_admin` removes the routes that call this; this is the second lock."""
        raise HTTPException(status_code=404)


class UserAdmin(ServiceModelView, model=User):
    """Accounts: search, sort, edit (name, flags, password), deactivate, delete."""

    icon = "fa-solid fa-user"
    # What the API shows of an account: never its password hash.
    column_list: ClassVar[list[Any]] = list(users.USER_COLUMNS)
    column_details_list: ClassVar[list[Any]] = column_list
    column_searchable_list: ClassVar[list[Any]] = [User.email, User.full_name]
    column_sortable_list: ClassVar[list[Any]] = column_list
    column_default_sort: ClassVar[list[Any]] = [("id", False)]
    can_create = False  # accounts are made by registering, or by `catalog users create`
    form = UserForm
    form_columns: ClassVar[list[Any]] = [
        User.full_name,
        User.is_active,
        User.is_superuser,
        User.version,
    ]

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        """`users.update_user`: a new password is hashed there and revokes older tokens."""
        fields = {
            "full_name": data.get("full_name") or None,
            "is_active": bool(data.get("is_active")),
            "is_superuser": bool(data.get("is_superuser")),
        }
        if data.get("password"):
            fields["password"] = data["password"]
        changes = _validated(UserAdminUpdate, fields).changes()
        expected = _expected(data.get("version"))
        async with _database(request).unit_of_work() as uow:
            user_id = _existing_id(pk)
            # As the signed-in superuser: the rules the API applies (no self-demotion).
            await users.update_user(uow, user_id, changes, actor=_actor(request), expected=expected)
        return User(id=user_id)

    async def delete_model(self, request: Request, pk: Any) -> None:
        """`users.delete_user`: the account and, by cascade, its items."""
        async with _database(request).unit_of_work() as uow:
            await users.delete_user(uow, _existing_id(pk), actor=_actor(request))


class ItemAdmin(ServiceModelView, model=Item):
    """Items: search by name, sort, edit any item (superuser), delete."""

    icon = "fa-solid fa-box"
    column_list: ClassVar[list[Any]] = [
        Item.id,
        Item.name,
        Item.price,
        Item.is_active,
        Item.owner,
        Item.tags,
        Item.updated_at,
    ]
    column_details_list: ClassVar[list[Any]] = [
        Item.id,
        Item.name,
        Item.description,
        Item.price,
        Item.is_active,
        Item.owner,
        Item.tags,
        Item.created_at,
        Item.updated_at,
    ]
    column_searchable_list: ClassVar[list[Any]] = [Item.name]
    column_sortable_list: ClassVar[list[Any]] = [
        Item.id,
        Item.name,
        Item.price,
        Item.is_active,
        Item.created_at,
        Item.updated_at,
    ]
    column_default_sort: ClassVar[list[Any]] = [("id", False)]
    can_create = False  # an item belongs to the user who creates it, through the API
    form = ItemForm
    form_columns: ClassVar[list[Any]] = [
        Item.name,
        Item.description,
        Item.price,
        Item.is_active,
        Item.tags,
        Item.version,
    ]

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        """`items.update_item` as the signed-in superuser: tags replaced by the names given."""
        fields = {
            "name": data.get("name"),
            "description": data.get("description") or None,
            "price": data.get("price"),
            "is_active": bool(data.get("is_active")),
            "tags": data.get("tags") or [],
        }
        changes = _validated(ItemUpdate, fields).changes()
        expected = _expected(data.get("version"))
        async with _database(request).unit_of_work() as uow:
            item_id = _existing_id(pk)
            await items.update_item(uow, _actor(request), item_id, changes, expected=expected)
        return Item(id=item_id)

    async def delete_model(self, request: Request, pk: Any) -> None:
        """`items.delete_item` as the signed-in superuser."""
        async with _database(request).unit_of_work() as uow:
            await items.delete_item(uow, _actor(request), _existing_id(pk))


class TagAdmin(ServiceModelView, model=Tag):
    """Tags: search, sort, create, rename, delete (which removes it from every item)."""

    icon = "fa-solid fa-tag"
    column_list: ClassVar[list[Any]] = [Tag.id, Tag.name]
    column_details_list: ClassVar[list[Any]] = column_list  # not its items: maybe millions
    column_searchable_list: ClassVar[list[Any]] = [Tag.name]
    column_sortable_list: ClassVar[list[Any]] = column_list
    column_default_sort: ClassVar[list[Any]] = [("name", False)]
    form = TagForm
    form_columns: ClassVar[list[Any]] = [Tag.name]

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        """`tags.create_tag` with the normalized name (409 if it exists)."""
        name = normalize_tag_name(str(data.get("name") or ""))
        async with _database(request).unit_of_work() as uow:
            tag = await tags.create_tag(uow, name)
        return Tag(id=tag["id"])

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        """`tags.rename_tag` with the normalized name (409 if another tag has it)."""
        name = normalize_tag_name(str(data.get("name") or ""))
        async with _database(request).unit_of_work() as uow:
            tag = await tags.rename_tag(uow, _existing_id(pk), name)
        return Tag(id=tag["id"])

    async def delete_model(self, request: Request, pk: Any) -> None:
        """`tags.delete_tag`: the database unlinks it from every item."""
        tag = await self.get_object_for_delete(pk)
        if tag is None:
            raise NotFoundError(tags.TAG_NOT_FOUND)
        async with _database(request).unit_of_work() as uow:
            await tags.delete_tag(uow, tag.name)


VIEWS: tuple[type[ServiceModelView], ...] = (UserAdmin, ItemAdmin, TagAdmin)
