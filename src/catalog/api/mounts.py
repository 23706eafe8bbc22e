"""A mounted app's bare path (`/admin`) redirects to the mount (`/admin/`).

Starlette's router does that for every mount by default (`redirect_slashes`), but the app
turns `redirect_slashes` off: it would also answer `/items/` with a redirect built from the
`Host` header, and API paths have one spelling. So a mount could only be reached with its
trailing slash and `GET /admin` was a 404. This gives back the mount half of that
behaviour, with a relative `Location` (`admin/`, resolved against the request's own URL: no
`Host` header, and right behind a proxy that strips a path prefix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route


def redirect_mount_roots(app: FastAPI) -> None:
    """Add a `GET`/`HEAD` route at every mount's bare path redirecting (307) into the mount.

    Call after the last `app.mount(...)`.
    """
    for route in list(app.router.routes):
        if isinstance(route, Mount) and route.path:
            app.router.routes.append(Route(route.path, _into(route.path), methods=["GET", "HEAD"]))


def _into(mount_path: str) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint redirecting `mount_path` to `mount_path/`, query string kept."""
    target = mount_path.rsplit("/", 1)[-1] + "/"

    async def redirect(request: Request) -> Response:
        query = request.url.query
        return RedirectResponse(f"{target}?{query}" if query else target, status_code=307)

    return redirect
