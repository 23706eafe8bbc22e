"""What every command shares: consoles, one-line errors, the error-handling command group."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from sqlalchemy.exc import DBAPIError
from typer.core import TyperGroup

from catalog.config import Settings, SettingsError
from catalog.db.database import Database
from catalog.db.unit_of_work import UnitOfWork
from catalog.errors import CatalogError

# Results go to stdout; progress, notices and errors to stderr, so output can be piped.
out = Console()
err = Console(stderr=True)

USAGE_ERROR = 2  # the exit code click uses for bad usage; bad configuration is the same kind
T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: <message>` as one line on stderr and exit with `code`."""
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg="red")
    raise typer.Exit(code)


class RichProgress:
    """Shows a `catalog.progress.ProgressSink`'s phases as one rich bar each."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, phase: str, total: int | None) -> None:
        self.tasks[phase] = self.progress.add_task(phase, total=total)

    def advance(self, phase: str, amount: int) -> None:
        self.progress.advance(self.tasks[phase], amount)


def in_unit_of_work(settings: Settings, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run `work` in one unit of work on the service's own (async) database layer.

    Commands that change accounts or items call the API's services this way, so the
    same rules apply; a failure rolls everything back.
    """

    async def run() -> T:
        database = Database.from_settings(settings)
        try:
            async with database.unit_of_work() as uow:
                return await work(uow)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except OSError as error:  # refused, unreachable, no such socket: before any statement
        fail(f"database error: cannot connect: {error}")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class CatalogGroup(TyperGroup):
    """The root group: turns expected failures from any command into one-line errors.

    Configuration errors exit with 2; database errors (unreachable server, missing
    tables...) and refusals by the services (no such user...) with 1; none prints a
    traceback, which would only bury the message.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as error:
            fail(str(error), USAGE_ERROR)
        except CatalogError as error:
            fail(error.detail)
        except DBAPIError as error:
            hint = ""
            if "does not exist" in str(error.orig) or "no such table" in str(error.orig):
                hint = " (is the database migrated? run `catalog db upgrade`)"
            fail(f"database error: {_first_line(error.orig or error)}{hint}")
