"""`catalog users ...`: account administration through the same services as the API.

Each command validates its input with the API's schemas and runs the API's service
functions in a unit of work of its own, so an account changed here obeys exactly the
rules it would over HTTP (normalisation, hashing parameters, token revocation).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table

from catalog.cli.common import USAGE_ERROR, err, fail, in_unit_of_work, out
from catalog.config import get_settings
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import ConflictError
from catalog.schemas import (
    Email,
    UserCreate,
    UserRead,
    UserUpdate,
    UserUpdateMe,
    validation_message,
)
from catalog.services import users

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)

EmailArgument = Annotated[str, typer.Argument(help="The account's email.", show_default=False)]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin (scripts)."
    ),
]


def _email(value: str) -> str:
    """The email normalized as the API stores it; exit 2 if it is not an email."""
    try:
        return TypeAdapter(Email).validate_python(value)
    except ValidationError as error:
        fail(f"email: {validation_message(error)}", USAGE_ERROR)


def _read_password(from_stdin: bool) -> str:
    if not from_stdin:
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        fail("--password-stdin: nothing on standard input", USAGE_ERROR)
    return line.rstrip("\r\n")


@app.command()
def create(
    email: EmailArgument,
    superuser: Annotated[bool, typer.Option("--superuser", help="Grant admin rights.")] = False,
    full_name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an account; the password is asked twice, hidden (or read with --password-stdin)."""
    settings = get_settings()  # a configuration error shows before any prompt
    _email(email)
    password = _read_password(password_stdin)
    try:
        data = UserCreate(email=email, password=password, full_name=full_name)
    except ValidationError as error:
        fail(validation_message(error), USAGE_ERROR)
    try:
        user = in_unit_of_work(
            settings, lambda uow: users.register(uow, data, is_superuser=superuser)
        )
    except ConflictError:
        # The unique index decides, not a prior lookup: two concurrent creates cannot both win.
        fail(f"a user with email {data.email} already exists")
    kind = "superuser" if superuser else "user"
    err.print(f"[green]Created {kind} {data.email} (id {user['id']}).[/]", highlight=False)


@app.command("set-password")
def set_password(email: EmailArgument, password_stdin: PasswordStdin = False) -> None:
    """Replace an account's password (which signs out its sessions: tokens are revoked)."""
    get_settings()  # a configuration error shows before any prompt
    address = _email(email)
    password = _read_password(password_stdin)
    try:
        changes = UserUpdateMe(password=password).changes()
    except ValidationError as error:
        fail(validation_message(error), USAGE_ERROR)
    _update(address, changes)
    err.print(f"[green]Password changed for {address}.[/]", highlight=False)


@app.command()
def deactivate(email: EmailArgument) -> None:
    """Block an account from logging in and writing (its data stays)."""
    address = _email(email)
    _update(address, UserUpdate(is_active=False).changes())
    err.print(f"[green]Deactivated {address}.[/]", highlight=False)


@app.command()
def activate(email: EmailArgument) -> None:
    """Re-enable a deactivated account."""
    address = _email(email)
    _update(address, UserUpdate(is_active=True).changes())
    err.print(f"[green]Activated {address}.[/]", highlight=False)


def _update(email: str, changes: dict[str, object]) -> UserRead:
    async def work(uow: UnitOfWork) -> UserRead:
        user_id = await users.get_user_id(uow, email)
        return (await users.update_user(uow, user_id, changes)).value

    return in_unit_of_work(get_settings(), work)


@app.command("list")
def list_users(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, by id.")] = 100,
) -> None:
    """Show the accounts, oldest first."""
    accounts = in_unit_of_work(
        get_settings(), lambda uow: users.list_users(uow, skip=0, limit=limit)
    )
    table = Table("id", "email", "full name", "active", "superuser", "created")
    for user in accounts:
        table.add_row(
            str(user["id"]),
            user["email"],
            user["full_name"] or "",
            "yes" if user["is_active"] else "no",
            "yes" if user["is_superuser"] else "no",
            f"{user['created_at']:%Y-%m-%d %H:%M}",
        )
    out.print(table)
