"""`catalog serve`: the API under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalog.cli.common import USAGE_ERROR, fail
from catalog.config import get_settings

APP_FACTORY = "catalog.api.app:create_app"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[
        bool, typer.Option(help="Restart when the code changes (development).")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
) -> None:
    """Serve the HTTP API with uvicorn (uvloop + httptools)."""
    if reload and workers > 1:
        fail("--reload and --workers > 1 cannot be combined", USAGE_ERROR)
    # Validate now, in one process with a readable error, rather than in every worker.
    settings = get_settings()
    settings.signing_key()  # creates the development key once, before workers race for it

    import uvicorn  # imported late: the other commands do not need it

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        reload_dirs=[str(PACKAGE_DIR)] if reload else None,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        log_level=settings.log_level.lower(),
        server_header=False,  # no banner naming the server software
        # X-Forwarded-For is believed only from TRUSTED_PROXIES (uvicorn would trust
        # 127.0.0.1 by default); it is the client address login throttling counts.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )
