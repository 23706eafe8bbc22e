"""The admin's edit forms: what a superuser may change, as the services take it.

The forms only collect and parse input (and mark required fields for the browser); the
rules are the request schemas' and the services' (`catalog.admin.views`), so the admin
refuses exactly what the API refuses.
"""

from __future__ import annotations

from typing import Any

from sqladmin.fields import BooleanField, TextAreaField
from wtforms import DecimalField, Field, Form, HiddenField, PasswordField, StringField
from wtforms.validators import InputRequired, Optional
from wtforms.widgets import TextInput

_CONTROL = {"class": "form-control"}
_SWITCH = {"class": "form-check-input"}


class TagNamesField(Field):
    """An item's tags as one line of comma-separated names."""

    widget = TextInput()

    def process_data(self, value: Any) -> None:
        """The edit form's initial value: the item's Tag rows (or names), sorted."""
        self.data = sorted(getattr(tag, "name", tag) for tag in value or ())

    def process_formdata(self, valuelist: list[Any]) -> None:
        """The submitted line, split at commas; empty parts are dropped."""
        text = str(valuelist[0]) if valuelist else ""
        self.data = [part for part in (p.strip() for p in text.split(",")) if part]

    def _value(self) -> str:
        return ", ".join(self.data or ())


class UserForm(Form):
    """An account: its name, flags and, optionally, a new password."""

    # The version the form was filled from: saving a stale form is refused (412), as an
    # API write with If-Match would be.
    version = HiddenField()
    full_name = StringField("Full name", [Optional()], render_kw=_CONTROL)
    is_active = BooleanField("Active", render_kw=_SWITCH)
    is_superuser = BooleanField("Superuser", render_kw=_SWITCH)
    password = PasswordField(
        "New password",
        [Optional()],
        description="Leave empty to keep the password. A new one ends the user's sessions "
        "and tokens.",
        render_kw=_CONTROL | {"autocomplete": "new-password"},
    )


class ItemForm(Form):
    """An item's fields and its tags (its owner is not editable, as in the API)."""

    version = HiddenField()  # see UserForm
    name = StringField("Name", [InputRequired()], render_kw=_CONTROL)
    description = TextAreaField("Description", [Optional()], render_kw=_CONTROL)
    price = DecimalField("Price", [InputRequired()], places=2, render_kw=_CONTROL)
    is_active = BooleanField("Active", render_kw=_SWITCH)
    tags = TagNamesField(
        "Tags",
        description="Comma-separated names; they are normalized, unknown ones are created.",
        render_kw=_CONTROL,
    )


class TagForm(Form):
    """A tag's name (normalized on save)."""

    name = StringField("Name", [InputRequired()], render_kw=_CONTROL)
