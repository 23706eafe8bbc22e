"""The interactive documentation (/docs: Swagger UI, /redoc: ReDoc), served offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (a floating major version, no
integrity check) and are blank without internet. These serve the same pages with the
assets from the service itself, at /docs/assets/: the bundles pinned in the lock file
through the `fastapi-offline` package (its static files: Swagger UI 5 and ReDoc 2; we
use nothing else of it). FastAPI's documented self-hosting pattern: `docs_url=None` and
`get_swagger_ui_html` with local asset URLs.

ReDoc's bundle is served with two edits (`REDOC_PATCHES`, each checked by the tests):
ReDoc 2 shows the Redocly logo from cdn.redoc.ly whatever its options, so that URL is
emptied (the image then hides itself) and the page asks nothing of another host; and the
styles its bundle injects as it loads (before `Redoc.init` can pass the nonce on) take
the nonce of the `<script>` element that loads it (webpack's `__webpack_nonce__`).

Each page has a content security policy of its own: scripts and styles from 'self' only,
plus the page's one inline start-up script (and ReDoc's generated styles), allowed by a
nonce made per response. Nothing else may load.
"""

from __future__ import annotations

import secrets
from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_PATH = "/docs/assets"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
PAGES = ("/docs", OAUTH2_REDIRECT_PATH, "/redoc")
REDOC_BUNDLE = "redoc.standalone.js"
REDOC_PATCHES = {
    b'"https://cdn.redoc.ly/redoc/logo-mini.svg"': b'""',
    b"n.nc=void 0": b"n.nc=(document.currentScript||{}).nonce||void 0",
}
# ReDoc's search runs in a worker it makes from a blob: URL.
_POLICY = (
    "default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_REDOC_PAGE = """<!DOCTYPE html>
<html>
<head>
<title>{title}</title>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="shortcut icon" href="{assets}/favicon.png">
<style nonce="{nonce}">body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc requires JavaScript to show the documentation.</noscript>
<div id="redoc"></div>
<script src="{assets}/redoc.standalone.js" nonce="{nonce}"></script>
<script nonce="{nonce}">
Redoc.init("{openapi_url}", {{nonce: "{nonce}"}}, document.getElementById("redoc"));
</script>
</body>
</html>
"""


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve /docs, /docs/oauth2-redirect, /redoc and their assets (create the app with
    `docs_url=None, redoc_url=None`)."""

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            # No badge image from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _with_nonce(bytes(page.body).decode())

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _with_nonce(bytes(get_swagger_ui_oauth2_redirect_html().body).decode())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        nonce = secrets.token_urlsafe(16)
        page = _REDOC_PAGE.format(
            title=f"{app.title} - ReDoc",
            assets=root + ASSETS_PATH,
            openapi_url=root + openapi_url,
            nonce=nonce,
        )
        return _page(page, nonce)

    @app.get(f"{ASSETS_PATH}/{REDOC_BUNDLE}", include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(redoc_bundle_bytes(), media_type="text/javascript")

    # After the routes above: the mount would take the bundle's path too.
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")


@cache
def redoc_bundle_bytes() -> bytes:
    """ReDoc's bundle with `REDOC_PATCHES` applied."""
    bundle = (ASSETS / REDOC_BUNDLE).read_bytes()
    for old, new in REDOC_PATCHES.items():
        bundle = bundle.replace(old, new)
    return bundle


def _with_nonce(html: str) -> HTMLResponse:
    """`html` with its inline scripts allowed by a new nonce (and only them)."""
    nonce = secrets.token_urlsafe(16)
    return _page(html.replace("<script>", f'<script nonce="{nonce}">'), nonce)


def _page(html: str, nonce: str) -> HTMLResponse:
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": _POLICY.format(nonce=nonce),
            "Cache-Control": "no-store",  # a nonce is good for one response only
        },
    )
