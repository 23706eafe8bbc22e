"""`catalog openapi`: the API's OpenAPI document, as the service built from the
current settings publishes it at /openapi.json (no database or server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from catalog.cli.common import out


def openapi(
    output: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the document here instead of stdout."),
    ] = None,
) -> None:
    """Print the OpenAPI document (the input of `make clients`)."""
    from catalog.api.app import create_app  # the app is imported only for this command

    document = create_app().openapi()
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    if output is None:
        out.file.write(text)
    else:
        output.write_text(text, encoding="utf-8")
