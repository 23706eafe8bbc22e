"""The `catalog` command line: `serve`, `db ...`, `users ...`, `seed`, `export`, `import`,
`openapi`."""

from __future__ import annotations

import typer

from catalog.cli import db, users
from catalog.cli.common import CatalogGroup
from catalog.cli.openapi import openapi
from catalog.cli.seed import seed
from catalog.cli.serve import serve
from catalog.cli.transfer import export_command, import_command

app = typer.Typer(
    cls=CatalogGroup,
    name="catalog",
    help="Catalog: serve the API and administer its database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals can hold passwords and URLs
)
app.command()(serve)
app.command()(seed)
app.command(name="export")(export_command)
app.command(name="import")(import_command)
app.command()(openapi)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")

__all__ = ["app"]
